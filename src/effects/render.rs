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

/// Pipeline failures the render world found (Bevy-side shader or pipeline errors), for
/// the main world to log and show. naga catches nearly everything before this.
#[derive(Resource, Clone, Default)]
pub struct RenderEffectErrors(pub Arc<Mutex<Vec<(String, String)>>>);

/// Registers the render-world side. Called from [`super::EffectsPlugin`].
pub(super) fn build(app: &mut App, errors: RenderEffectErrors) {
    app.add_plugins(ExtractResourcePlugin::<ChainFrame>::default());
    let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
        return;
    };
    render_app
        .insert_resource(errors)
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
}

fn init_layout(mut commands: Commands, device: Res<RenderDevice>) {
    let layout = BindGroupLayoutDescriptor::new(
        "lucid_effect_layout",
        &BindGroupLayoutEntries::sequential(
            ShaderStages::FRAGMENT,
            (
                texture_2d(TextureSampleType::Float { filterable: true }),
                sampler(SamplerBindingType::Filtering),
                uniform_buffer_sized(false, Some((GLOBALS_BYTES as u64).try_into().unwrap())),
                uniform_buffer_sized(false, Some((PARAMS_BYTES as u64).try_into().unwrap())),
                texture_2d(TextureSampleType::Float { filterable: true }),
                texture_2d(TextureSampleType::Float { filterable: true }),
                texture_2d(TextureSampleType::Float { filterable: true }),
            ),
        ),
    );
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
    commands.insert_resource(EffectLayout {
        layout,
        sampler,
        spectrum,
        spectrum_view,
    });
}

/// Effect pipelines by shader, and each effect's last one that worked.
#[derive(Resource, Default)]
pub struct EffectPipelines {
    by_shader: HashMap<AssetId<Shader>, CachedRenderPipelineId>,
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

/// One effect pass ready to record: its pipeline and its uniforms, written for this frame.
pub struct PreparedPass {
    label: String,
    pipeline: CachedRenderPipelineId,
    globals: Buffer,
    params: Buffer,
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
        let Some(layout) = self.layout.as_ref() else {
            return Vec::new();
        };
        let mut prepared = Vec::with_capacity(frames.len());
        // The uniform buffer pair of the next pass that runs.
        let mut slot = 0;
        for (i, pass) in frames.iter().enumerate() {
            let id = *self
                .pipelines
                .by_shader
                .entry(pass.shader.id())
                .or_insert_with(|| {
                    // Effects store encoded values through the plain view.
                    queue_fullscreen_pipeline(
                        &self.cache,
                        &self.fullscreen,
                        format!("lucid_effect_{}", pass.key),
                        &layout.layout,
                        pass.shader.clone(),
                        "lucid_fragment",
                        CANVAS_RAW_FORMAT,
                    )
                });
            let pipeline = match self.cache.get_render_pipeline_state(id) {
                CachedPipelineState::Ok(_) => {
                    self.pipelines.ready(&pass.key, id);
                    Some(id)
                }
                CachedPipelineState::Err(e) => {
                    if self.pipelines.reported.insert(id)
                        && let Ok(mut errors) = self.errors.0.lock()
                    {
                        errors.push((pass.key.clone(), e.to_string()));
                    }
                    self.pipelines.last_good.get(&pass.key).copied()
                }
                _ => self.pipelines.last_good.get(&pass.key).copied(),
            };
            let Some(pipeline) = pipeline else {
                prepared.push(None);
                continue;
            };
            if buffers.len() <= slot {
                let make = |label: &str, size: usize| {
                    self.device.create_buffer(&BufferDescriptor {
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
            let (globals, params) = buffers[slot].clone();
            slot += 1;
            self.queue.write_buffer(&globals, 0, &pass.globals);
            self.queue.write_buffer(&params, 0, &pass.params);
            prepared.push(Some(PreparedPass {
                label: format!("{label}/{i}_{}", pass.key),
                pipeline,
                globals,
                params,
            }));
        }
        prepared
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
        let bind_group = ctx.render_device().create_bind_group(
            "lucid_effect_bind_group",
            &self.cache.get_bind_group_layout(&layout.layout),
            &BindGroupEntries::sequential((
                targets.source,
                &layout.sampler,
                pass.globals.as_entire_binding(),
                pass.params.as_entire_binding(),
                targets.history,
                targets.source_encoded,
                &layout.spectrum_view,
            )),
        );
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
