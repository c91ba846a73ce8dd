//! The render-world half of the effect chain: one pipeline per effect shader, uniform
//! buffers and a feedback texture that persist across frames, and a system in the canvas
//! passes ([`CanvasSystems::Effects`]) that runs the chain over the canvas, ping-ponging
//! between the canvas and its scratch texture ([`CanvasView::post_process_write`]), so no
//! texture is made per frame. [`EffectPassPrep`] and [`EffectPassRunner`] are shared with
//! the compositor, which runs each layer's own chain the same way on textures of its own.
//!
//! A shader whose pipeline is still compiling or failed is not run: the effect's last
//! pipeline that worked runs instead, so a bad edit never blacks out the show.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bevy::core_pipeline::FullscreenShader;
use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::render::{
    Render, RenderApp, RenderStartup, RenderSystems,
    diagnostic::RecordDiagnostics,
    extract_resource::{ExtractResource, ExtractResourcePlugin},
    render_resource::{
        binding_types::{sampler, texture_2d, uniform_buffer_sized},
        *,
    },
    renderer::{RenderContext, RenderDevice, RenderGraph, RenderQueue},
};

use super::definition::{GLOBALS_BYTES, PARAMS_BYTES};
use super::passes::{ImportedImage, MAX_TARGETS, START_SLOT};
use crate::sound::analysis::SPECTRUM_BINS;
use crate::video::pass::{
    begin_pass, bilinear_sampler, extent, queue_fullscreen_pipeline, sized_texture,
};
use crate::video::render::{CANVAS_FORMAT, CANVAS_RAW_FORMAT, CanvasSystems, CanvasView};

/// One pass as the main world hands it over each frame.
#[derive(Clone, Debug)]
pub struct PassFrame {
    /// Stable identity of the chain slot's effect (its name), for "last good pipeline".
    pub key: String,
    /// The shader of the effect's current version.
    pub shader: Handle<Shader>,
    /// `lucid` globals block.
    pub globals: [u8; GLOBALS_BYTES],
    /// `params` block.
    pub params: Vec<u8>,
    /// A multi-pass ISF effect's passes; `None` for a one-pass effect.
    pub isf: Option<IsfFrame>,
}

/// A multi-pass ISF effect's passes for this frame.
#[derive(Clone, Debug)]
pub struct IsfFrame {
    /// In order; the last one also draws the effect's output.
    pub passes: Vec<SubPassFrame>,
    /// Per render target: 16-bit float texels.
    pub float: Vec<bool>,
    /// `IMPORTED` images, bound after the targets.
    pub imported: Vec<Arc<ImportedImage>>,
}

/// One pass of a multi-pass ISF effect.
#[derive(Clone, Debug)]
pub struct SubPassFrame {
    /// Its shader.
    pub shader: Handle<Shader>,
    /// Globals at its own size (`RENDERSIZE`).
    pub globals: [u8; GLOBALS_BYTES],
    /// Globals at the output's size, for the last pass's output.
    pub out_globals: [u8; GLOBALS_BYTES],
    /// The size it renders at.
    pub size: UVec2,
    /// The target it renders into.
    pub target: Option<usize>,
}

/// Everything the renderer needs for this frame's chain.
#[derive(Resource, Clone, Debug, Default, ExtractResource)]
pub struct ChainFrame {
    /// Effect passes in order.
    pub passes: Vec<PassFrame>,
    /// True when an effect reads the previous output (the output is kept for it).
    pub keep_output: bool,
    /// The blackout/fade pass, when the level is below 1.
    pub master: Option<PassFrame>,
    /// The sound's spectrum at this frame, [`SPECTRUM_BINS`] bytes (0..255 for 0..1):
    /// `audio_spectrum(f)` in every chain, the layers' too. Empty: unchanged.
    pub spectrum: Vec<u8>,
}

/// Whether every pass of the last prepared master chain had a pipeline to run (false
/// while one is still compiling): shared by both worlds.
#[derive(Resource, Clone, Default)]
pub struct ChainReady(pub Arc<std::sync::atomic::AtomicBool>);

/// Pipeline failures the render world found (Bevy-side shader or pipeline errors), for
/// the main world to log and show. naga catches nearly everything before this.
#[derive(Resource, Clone, Default)]
pub struct RenderEffectErrors(pub Arc<Mutex<Vec<(String, String)>>>);

/// Registers the render-world side. Called from [`super::EffectsPlugin`].
pub(super) fn build(app: &mut App, errors: RenderEffectErrors, ready: ChainReady) {
    app.add_plugins(ExtractResourcePlugin::<ChainFrame>::default());
    let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
        return;
    };
    render_app
        .insert_resource(errors)
        .insert_resource(ready)
        .init_resource::<EffectPipelines>()
        .init_resource::<PreparedChain>()
        .add_systems(RenderStartup, init_layout)
        .add_systems(
            Render,
            prepare_chain
                .in_set(RenderSystems::PrepareResources)
                .in_set(CanvasSystems::PreparePasses)
                .after(CanvasSystems::PrepareView),
        )
        .add_systems(RenderGraph, run_chain.in_set(CanvasSystems::Effects));
}

/// The effects' bind group layout and sampler, and the spectrum texture every pass reads.
#[derive(Resource)]
pub struct EffectLayout {
    layout: BindGroupLayoutDescriptor,
    sampler: Sampler,
    spectrum: Texture,
    spectrum_view: TextureView,
    /// Bound where a multi-pass effect's target would be.
    blank: TextureView,
}

fn init_layout(mut commands: Commands, device: Res<RenderDevice>) {
    let texture = || texture_2d(TextureSampleType::Float { filterable: true });
    let mut entries = vec![
        texture(),
        sampler(SamplerBindingType::Filtering),
        uniform_buffer_sized(false, Some((GLOBALS_BYTES as u64).try_into().unwrap())),
        uniform_buffer_sized(false, Some((PARAMS_BYTES as u64).try_into().unwrap())),
        texture(),
        texture(),
        texture(),
    ];
    // A multi-pass ISF effect's render targets; a blank texel for everyone else.
    entries.extend((0..MAX_TARGETS).map(|_| texture()));
    let entries: Vec<BindGroupLayoutEntry> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| e.build(i as u32, ShaderStages::FRAGMENT))
        .collect();
    let layout = BindGroupLayoutDescriptor::new("lucid_effect_layout", &entries);
    // Bilinear, clamped: effects sample between pixels (zoom, rotation, blur taps).
    let sampler = bilinear_sampler(&device, "lucid_effect_sampler");
    // One row of bins, filtered between them by the same sampler; silent (zero) until the
    // sound is measured.
    let spectrum = sized_texture(
        &device,
        "lucid_audio_spectrum",
        UVec2::new(SPECTRUM_BINS as u32, 1),
        TextureFormat::R8Unorm,
        TextureUsages::TEXTURE_BINDING | TextureUsages::COPY_DST,
        &[],
    );
    let spectrum_view = spectrum.create_view(&TextureViewDescriptor::default());
    let blank = sized_texture(
        &device,
        "lucid_effect_blank",
        UVec2::ONE,
        CANVAS_RAW_FORMAT,
        TextureUsages::TEXTURE_BINDING,
        &[],
    )
    .create_view(&TextureViewDescriptor::default());
    commands.insert_resource(EffectLayout {
        layout,
        sampler,
        spectrum,
        spectrum_view,
        blank,
    });
}

/// Effect pipelines by shader, and each effect's last one that worked.
#[derive(Resource, Default)]
pub struct EffectPipelines {
    by_shader: HashMap<(AssetId<Shader>, TextureFormat), CachedRenderPipelineId>,
    /// Multi-pass ISF effects' render targets, by chain slot (the pass's label).
    targets: HashMap<String, Vec<TargetTextures>>,
    /// ISF effects' imported images, uploaded once, by chain slot: (which image, view).
    imported: HashMap<String, Vec<(Arc<ImportedImage>, TextureView)>>,
    /// Per effect: the newest pipeline that was ready.
    last_good: HashMap<String, CachedRenderPipelineId>,
    reported: HashSet<CachedRenderPipelineId>,
}

impl EffectPipelines {
    /// `id` is ready for `key`: it becomes the fallback, and the version it replaces is
    /// forgotten. (Its shader asset was dropped with the old version, which makes Bevy's
    /// pipeline cache release the GPU pipeline; here only the bookkeeping goes.)
    fn ready(&mut self, key: &str, id: CachedRenderPipelineId) {
        if let Some(old) = self.last_good.insert(key.to_string(), id)
            && old != id
        {
            self.by_shader.retain(|_, v| *v != old);
            self.reported.remove(&old);
        }
    }
}

/// One render target of a multi-pass ISF effect: two textures, so a pass can read what
/// the target held while it writes its new content (feedback); kept between frames.
struct TargetTextures {
    size: UVec2,
    format: TextureFormat,
    _textures: [Texture; 2],
    views: [TextureView; 2],
    /// The one holding the current content.
    front: usize,
}

/// One effect pass ready to record: its pipeline and its uniforms, written for this frame.
pub struct PreparedPass {
    label: String,
    pipeline: CachedRenderPipelineId,
    globals: Buffer,
    params: Buffer,
    /// A multi-pass ISF effect's passes (then `pipeline` and `globals` are its last's).
    subs: Vec<PreparedSub>,
}

/// One pass of a multi-pass ISF effect, ready to record.
struct PreparedSub {
    /// Renders into `write` (its target's format).
    pipeline: CachedRenderPipelineId,
    globals: Buffer,
    /// The last pass: its pipeline and globals for the effect's output.
    output: Option<(CachedRenderPipelineId, Buffer)>,
    params: Buffer,
    /// Each target's current content, as this pass reads it.
    reads: Vec<TextureView>,
    /// Its target's other texture, which it writes.
    write: Option<TextureView>,
}

/// The uniform buffer pairs a chain has, grown as needed.
fn buffer_pair(
    device: &RenderDevice,
    buffers: &mut Vec<(Buffer, Buffer)>,
    slot: usize,
) -> (Buffer, Buffer) {
    while buffers.len() <= slot {
        let make = |label: &str, size: usize| {
            device.create_buffer(&BufferDescriptor {
                label: Some(label),
                size: size as u64,
                usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        buffers.push((
            make("lucid_effect_globals", GLOBALS_BYTES),
            make("lucid_effect_params", PARAMS_BYTES),
        ));
    }
    buffers[slot].clone()
}

/// Where one effect pass reads and writes.
pub struct EffectTargets<'a> {
    /// The picture so far (sRGB view: filtered samples in linear light).
    pub source: &'a TextureView,
    /// The picture so far (plain view: encoded values).
    pub source_encoded: &'a TextureView,
    /// The chain's previous output, for feedback effects.
    pub history: &'a TextureView,
    /// Where the pass writes (plain view).
    pub destination: &'a TextureView,
    /// A transition's start image (the crossfader's A side, plain view).
    pub start: Option<&'a TextureView>,
}

/// Prepares effect passes: the master chain's here, a compositor layer's in
/// the compositor's `render` module. Pipelines are shared by shader; each chain keeps its own
/// uniform buffers (passes are recorded before the queue's writes land, so two passes
/// sharing a buffer would both see the last values).
#[derive(SystemParam)]
pub struct EffectPassPrep<'w> {
    layout: Option<Res<'w, EffectLayout>>,
    fullscreen: Res<'w, FullscreenShader>,
    cache: Res<'w, PipelineCache>,
    device: Res<'w, RenderDevice>,
    queue: Res<'w, RenderQueue>,
    errors: Res<'w, RenderEffectErrors>,
    pipelines: ResMut<'w, EffectPipelines>,
}

impl EffectPassPrep<'_> {
    /// True once the effects' bind group layout exists.
    pub fn ready(&self) -> bool {
        self.layout.is_some()
    }

    /// The passes of `frames` that have a working pipeline (a compiling or broken shader
    /// runs the effect's last good version, or is skipped), with their uniforms written
    /// into `buffers` (grown as needed). Spans are labelled `{label}/{index}_{effect}`.
    pub fn prepare(
        &mut self,
        frames: &[PassFrame],
        buffers: &mut Vec<(Buffer, Buffer)>,
        label: &str,
    ) -> Vec<Option<PreparedPass>> {
        if self.layout.is_none() {
            return Vec::new();
        }
        let mut prepared = Vec::with_capacity(frames.len());
        // The uniform buffer pair of the next pass that runs.
        let mut slot = 0;
        for (i, pass) in frames.iter().enumerate() {
            let label = format!("{label}/{i}_{}", pass.key);
            if let Some(isf) = &pass.isf {
                let prepared_isf = self.prepare_isf(pass, isf, &label, buffers, &mut slot);
                prepared.push(prepared_isf);
                continue;
            }
            let Some(pipeline) = self.pipeline(&pass.key, &pass.shader, CANVAS_RAW_FORMAT, true)
            else {
                prepared.push(None);
                continue;
            };
            let (globals, params) = buffer_pair(&self.device, buffers, slot);
            slot += 1;
            self.queue.write_buffer(&globals, 0, &pass.globals);
            self.queue.write_buffer(&params, 0, &pass.params);
            prepared.push(Some(PreparedPass {
                label,
                pipeline,
                globals,
                params,
                subs: Vec::new(),
            }));
        }
        prepared
    }

    /// The pipeline of `shader` writing `format`: its own once compiled; until then (or if it
    /// failed) the effect's last good one where `fallback` allows it.
    fn pipeline(
        &mut self,
        key: &str,
        shader: &Handle<Shader>,
        format: TextureFormat,
        fallback: bool,
    ) -> Option<CachedRenderPipelineId> {
        let layout = self.layout.as_ref()?;
        let id = *self
            .pipelines
            .by_shader
            .entry((shader.id(), format))
            .or_insert_with(|| {
                // Effects store encoded values through the plain view.
                queue_fullscreen_pipeline(
                    &self.cache,
                    &self.fullscreen,
                    format!("lucid_effect_{key}"),
                    &layout.layout,
                    shader.clone(),
                    "lucid_fragment",
                    format,
                )
            });
        match self.cache.get_render_pipeline_state(id) {
            CachedPipelineState::Ok(_) => {
                if fallback {
                    self.pipelines.ready(key, id);
                }
                Some(id)
            }
            CachedPipelineState::Err(e) => {
                if self.pipelines.reported.insert(id)
                    && let Ok(mut errors) = self.errors.0.lock()
                {
                    errors.push((key.to_string(), e.to_string()));
                }
                fallback
                    .then(|| self.pipelines.last_good.get(key).copied())
                    .flatten()
            }
            _ => fallback
                .then(|| self.pipelines.last_good.get(key).copied())
                .flatten(),
        }
    }

    /// A multi-pass ISF effect: every pass's pipelines (the effect waits until all are
    /// ready), uniforms and targets, ping-ponged in pass order.
    fn prepare_isf(
        &mut self,
        pass: &PassFrame,
        isf: &IsfFrame,
        label: &str,
        buffers: &mut Vec<(Buffer, Buffer)>,
        slot: &mut usize,
    ) -> Option<PreparedPass> {
        let blank = self.layout.as_ref()?.blank.clone();
        let format = |k: usize| {
            if isf.float.get(k).copied().unwrap_or(false) {
                TextureFormat::Rgba16Float
            } else {
                CANVAS_RAW_FORMAT
            }
        };
        let last = isf.passes.len().checked_sub(1)?;
        let mut pipelines = Vec::with_capacity(isf.passes.len());
        for (i, sub) in isf.passes.iter().enumerate() {
            let key = format!("{}#{i}", pass.key);
            let into = match sub.target {
                Some(k) => Some(self.pipeline(&key, &sub.shader, format(k), false)?),
                None => None,
            };
            let out = match i == last {
                true => Some(self.pipeline(&key, &sub.shader, CANVAS_RAW_FORMAT, false)?),
                false => None,
            };
            pipelines.push((into, out));
        }
        // Each target at the size of the pass that writes it first.
        let wanted: Vec<(UVec2, TextureFormat)> = (0..isf.float.len())
            .map(|k| {
                let size = isf
                    .passes
                    .iter()
                    .find(|p| p.target == Some(k))
                    .map_or(UVec2::ONE, |p| p.size.max(UVec2::ONE));
                (size, format(k))
            })
            .collect();
        let device = self.device.clone();
        let targets = self.pipelines.targets.entry(label.to_string()).or_default();
        targets.truncate(wanted.len());
        for (k, (size, format)) in wanted.iter().enumerate() {
            if targets
                .get(k)
                .is_some_and(|t| t.size == *size && t.format == *format)
            {
                continue;
            }
            let make = || {
                sized_texture(
                    &device,
                    "lucid_isf_target",
                    *size,
                    *format,
                    TextureUsages::TEXTURE_BINDING | TextureUsages::RENDER_ATTACHMENT,
                    &[],
                )
            };
            let textures = [make(), make()];
            let views = [
                textures[0].create_view(&TextureViewDescriptor::default()),
                textures[1].create_view(&TextureViewDescriptor::default()),
            ];
            let made = TargetTextures {
                size: *size,
                format: *format,
                _textures: textures,
                views,
                front: 0,
            };
            if k < targets.len() {
                targets[k] = made;
            } else {
                targets.push(made);
            }
        }
        // Imported images: uploaded when first seen (or when the file was reloaded).
        let uploaded = self
            .pipelines
            .imported
            .entry(label.to_string())
            .or_default();
        let current = uploaded.len() == isf.imported.len()
            && uploaded
                .iter()
                .zip(&isf.imported)
                .all(|((a, _), b)| Arc::ptr_eq(a, b));
        if !current {
            *uploaded = isf
                .imported
                .iter()
                .map(|image| {
                    let size = UVec2::new(image.size.0, image.size.1);
                    let texture = sized_texture(
                        &device,
                        "lucid_isf_imported",
                        size,
                        CANVAS_RAW_FORMAT,
                        TextureUsages::TEXTURE_BINDING | TextureUsages::COPY_DST,
                        &[],
                    );
                    self.queue.write_texture(
                        texture.as_image_copy(),
                        &image.rgba,
                        TexelCopyBufferLayout {
                            offset: 0,
                            bytes_per_row: Some(size.x * 4),
                            rows_per_image: None,
                        },
                        extent(size),
                    );
                    let view = texture.create_view(&TextureViewDescriptor::default());
                    (image.clone(), view)
                })
                .collect();
        }
        let imported: Vec<TextureView> = uploaded.iter().map(|(_, v)| v.clone()).collect();
        let targets = self.pipelines.targets.get_mut(label)?;
        let mut subs = Vec::with_capacity(isf.passes.len());
        for (sub, (into, out)) in isf.passes.iter().zip(pipelines) {
            let reads: Vec<TextureView> = (0..MAX_TARGETS)
                .map(|k| match targets.get(k) {
                    Some(t) => t.views[t.front].clone(),
                    None => imported
                        .get(k - targets.len())
                        .cloned()
                        .unwrap_or_else(|| blank.clone()),
                })
                .collect();
            let write = sub.target.and_then(|k| targets.get_mut(k)).map(|t| {
                t.front = 1 - t.front;
                t.views[t.front].clone()
            });
            let (globals, params) = buffer_pair(&device, buffers, *slot);
            *slot += 1;
            self.queue.write_buffer(&globals, 0, &sub.globals);
            self.queue.write_buffer(&params, 0, &pass.params);
            let output = match out {
                Some(out) => {
                    let (out_globals, _) = buffer_pair(&device, buffers, *slot);
                    *slot += 1;
                    self.queue.write_buffer(&out_globals, 0, &sub.out_globals);
                    Some((out, out_globals))
                }
                None => None,
            };
            subs.push(PreparedSub {
                pipeline: into.or(output.as_ref().map(|o| o.0))?,
                globals,
                output,
                params,
                reads,
                write,
            });
        }
        let (pipeline, globals) = subs.last()?.output.clone()?;
        Some(PreparedPass {
            label: label.to_string(),
            pipeline,
            params: subs.last()?.params.clone(),
            globals,
            subs,
        })
    }

    /// Writes this frame's spectrum ([`SPECTRUM_BINS`] bytes) for every pass to read.
    pub fn write_spectrum(&self, bins: &[u8]) {
        let Some(layout) = self.layout.as_ref() else {
            return;
        };
        if bins.len() != SPECTRUM_BINS {
            return;
        }
        self.queue.write_texture(
            layout.spectrum.as_image_copy(),
            bins,
            TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(SPECTRUM_BINS as u32),
                rows_per_image: None,
            },
            extent(UVec2::new(SPECTRUM_BINS as u32, 1)),
        );
    }

    /// A `size` texture for a chain's previous output.
    pub fn history_texture(&self, size: UVec2) -> (Texture, TextureView) {
        let texture = sized_texture(
            &self.device,
            "lucid_effect_history",
            size,
            CANVAS_FORMAT,
            TextureUsages::TEXTURE_BINDING | TextureUsages::COPY_DST,
            &[],
        );
        let view = texture.create_view(&TextureViewDescriptor::default());
        (texture, view)
    }
}

/// Records prepared effect passes.
#[derive(SystemParam)]
pub struct EffectPassRunner<'w> {
    layout: Option<Res<'w, EffectLayout>>,
    cache: Res<'w, PipelineCache>,
}

impl EffectPassRunner<'_> {
    /// True when `pass` can be recorded now.
    pub fn ready_to_run(&self, pass: &PreparedPass) -> bool {
        self.layout.is_some() && self.cache.get_render_pipeline(pass.pipeline).is_some()
    }

    /// Records `pass` reading and writing `targets`, timed as its label; false when its
    /// pipeline is not there (nothing is written then).
    pub fn run<D: RecordDiagnostics>(
        &self,
        ctx: &mut RenderContext,
        diagnostics: &D,
        pass: &PreparedPass,
        targets: EffectTargets,
    ) -> bool {
        let (Some(layout), Some(pipeline)) = (
            self.layout.as_ref(),
            self.cache.get_render_pipeline(pass.pipeline),
        ) else {
            return false;
        };
        if !pass.subs.is_empty() {
            return self.run_isf(ctx, diagnostics, pass, &targets);
        }
        let mut reads: Vec<TextureView> = (0..MAX_TARGETS).map(|_| layout.blank.clone()).collect();
        if let Some(start) = targets.start {
            reads[START_SLOT] = start.clone();
        }
        let bind_group = self.bind_group(ctx, pass, &pass.globals, &pass.params, &targets, &reads);
        let span = diagnostics.time_span(ctx.command_encoder(), pass.label.clone());
        {
            let mut render_pass = begin_pass(ctx, "lucid_effect_pass", targets.destination, false);
            render_pass.set_render_pipeline(pipeline);
            render_pass.set_bind_group(0, &bind_group, &[]);
            render_pass.draw(0..3, 0..1);
        }
        span.end(ctx.command_encoder());
        true
    }

    fn bind_group(
        &self,
        ctx: &mut RenderContext,
        _pass: &PreparedPass,
        globals: &Buffer,
        params: &Buffer,
        targets: &EffectTargets,
        reads: &[TextureView],
    ) -> BindGroup {
        let layout = self.layout.as_ref().expect("checked by the caller");
        let mut entries = vec![
            BindGroupEntry {
                binding: 0,
                resource: BindingResource::TextureView(targets.source),
            },
            BindGroupEntry {
                binding: 1,
                resource: BindingResource::Sampler(&layout.sampler),
            },
            BindGroupEntry {
                binding: 2,
                resource: globals.as_entire_binding(),
            },
            BindGroupEntry {
                binding: 3,
                resource: params.as_entire_binding(),
            },
            BindGroupEntry {
                binding: 4,
                resource: BindingResource::TextureView(targets.history),
            },
            BindGroupEntry {
                binding: 5,
                resource: BindingResource::TextureView(targets.source_encoded),
            },
            BindGroupEntry {
                binding: 6,
                resource: BindingResource::TextureView(&layout.spectrum_view),
            },
        ];
        entries.extend(reads.iter().enumerate().map(|(k, view)| BindGroupEntry {
            binding: 7 + k as u32,
            resource: BindingResource::TextureView(view),
        }));
        ctx.render_device().create_bind_group(
            "lucid_effect_bind_group",
            &self.cache.get_bind_group_layout(&layout.layout),
            &entries,
        )
    }

    /// Records a multi-pass ISF effect: each pass into its target, the last also into the
    /// destination.
    fn run_isf<D: RecordDiagnostics>(
        &self,
        ctx: &mut RenderContext,
        diagnostics: &D,
        pass: &PreparedPass,
        targets: &EffectTargets,
    ) -> bool {
        let span = diagnostics.time_span(ctx.command_encoder(), pass.label.clone());
        for sub in &pass.subs {
            let Some(pipeline) = self.cache.get_render_pipeline(sub.pipeline) else {
                span.end(ctx.command_encoder());
                return false;
            };
            if let Some(write) = &sub.write {
                let bind_group =
                    self.bind_group(ctx, pass, &sub.globals, &sub.params, targets, &sub.reads);
                let mut render_pass = begin_pass(ctx, "lucid_isf_pass", write, false);
                render_pass.set_render_pipeline(pipeline);
                render_pass.set_bind_group(0, &bind_group, &[]);
                render_pass.draw(0..3, 0..1);
            }
            if let Some((out, globals)) = &sub.output
                && let Some(out) = self.cache.get_render_pipeline(*out)
            {
                let bind_group =
                    self.bind_group(ctx, pass, globals, &sub.params, targets, &sub.reads);
                let mut render_pass = begin_pass(ctx, "lucid_isf_pass", targets.destination, false);
                render_pass.set_render_pipeline(out);
                render_pass.set_bind_group(0, &bind_group, &[]);
                render_pass.draw(0..3, 0..1);
            }
        }
        span.end(ctx.command_encoder());
        true
    }
}

#[derive(Resource, Default)]
struct PreparedChain {
    passes: Vec<PreparedPass>,
    master: Option<PreparedPass>,
    buffers: Vec<(Buffer, Buffer)>,
    keep_output: bool,
    /// The previous output frame: (texture, view, size).
    history: Option<(Texture, TextureView, UVec2)>,
}

fn prepare_chain(
    frame: Option<Res<ChainFrame>>,
    mut view: ResMut<CanvasView>,
    mut prep: EffectPassPrep,
    mut prepared: ResMut<PreparedChain>,
    ready: Res<ChainReady>,
) {
    prepared.passes.clear();
    prepared.master = None;
    let Some(frame) = frame else { return };
    if !view.ready() || !prep.ready() {
        return;
    }
    let size = view.size();
    if !prepared.history.as_ref().is_some_and(|h| h.2 == size) {
        let (texture, history) = prep.history_texture(size);
        prepared.history = Some((texture, history, size));
    }
    prepared.keep_output = frame.keep_output;
    prep.write_spectrum(&frame.spectrum);
    let all: Vec<PassFrame> = frame
        .passes
        .iter()
        .chain(frame.master.iter())
        .cloned()
        .collect();
    let mut buffers = std::mem::take(&mut prepared.buffers);
    let mut passes = prep.prepare(&all, &mut buffers, "lucid_effect");
    prepared.buffers = buffers;
    ready.0.store(
        passes.iter().all(Option::is_some),
        std::sync::atomic::Ordering::Relaxed,
    );
    if frame.master.is_some() {
        prepared.master = passes.pop().flatten();
    }
    prepared.passes = passes.into_iter().flatten().collect();
    // The video pass starts where this many passes end in the canvas.
    view.add_planned_passes(prepared.passes.len() + usize::from(prepared.master.is_some()));
}

fn run_chain(
    mut view: ResMut<CanvasView>,
    prepared: Res<PreparedChain>,
    runner: EffectPassRunner,
    mut ctx: RenderContext,
) {
    let Some((history_texture, history_view, size)) = prepared.history.as_ref() else {
        return;
    };
    if !view.ready() || (prepared.passes.is_empty() && prepared.master.is_none()) {
        return;
    }
    let diagnostics = ctx.diagnostic_recorder();
    let diagnostics = diagnostics.as_deref();
    let chain_span = diagnostics.time_span(ctx.command_encoder(), "lucid_effects");
    let run = |pass: &PreparedPass, view: &mut CanvasView, ctx: &mut RenderContext| {
        // A pass that cannot run must not flip the canvas: the settle pass copies back.
        if runner.ready_to_run(pass)
            && let Some(post) = view.post_process_write()
        {
            runner.run(
                ctx,
                &diagnostics,
                pass,
                EffectTargets {
                    source: post.source,
                    source_encoded: post.source_encoded,
                    history: history_view,
                    destination: post.destination,
                    start: None,
                },
            );
        }
    };
    for pass in &prepared.passes {
        run(pass, &mut view, &mut ctx);
    }
    if prepared.keep_output
        && let Some(current) = view.current()
    {
        // The chain's output (before any fade) is what feedback effects read next frame.
        ctx.command_encoder().copy_texture_to_texture(
            current.as_image_copy(),
            history_texture.as_image_copy(),
            extent(*size),
        );
    }
    if let Some(master) = &prepared.master {
        run(master, &mut view, &mut ctx);
    }
    chain_span.end(ctx.command_encoder());
}
