//! The render-world half of the effect chain: one pipeline per effect shader, uniform
//! buffers and a feedback texture that persist across frames, and a system in the canvas
//! passes ([`CanvasSystems::Effects`]) that runs the chain over the canvas, ping-ponging
//! between the canvas and its scratch texture ([`CanvasView::post_process_write`]), so no
//! texture is made per frame.
//!
//! A shader whose pipeline is still compiling or failed is not run: the effect's last
//! pipeline that worked runs instead, so a bad edit never blacks out the show.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bevy::core_pipeline::FullscreenShader;
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

#[derive(Resource)]
struct EffectLayout {
    layout: BindGroupLayoutDescriptor,
    sampler: Sampler,
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
            ),
        ),
    );
    // Bilinear, clamped: effects sample between pixels (zoom, rotation, blur taps).
    let sampler = bilinear_sampler(&device, "lucid_effect_sampler");
    commands.insert_resource(EffectLayout { layout, sampler });
}

#[derive(Resource, Default)]
struct EffectPipelines {
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

struct PreparedPass {
    label: String,
    pipeline: CachedRenderPipelineId,
    globals: Buffer,
    params: Buffer,
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

#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn prepare_chain(
    frame: Option<Res<ChainFrame>>,
    mut view: ResMut<CanvasView>,
    layout: Option<Res<EffectLayout>>,
    fullscreen: Res<FullscreenShader>,
    cache: Res<PipelineCache>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    errors: Res<RenderEffectErrors>,
    mut pipelines: ResMut<EffectPipelines>,
    mut prepared: ResMut<PreparedChain>,
) {
    prepared.passes.clear();
    prepared.master = None;
    let (Some(frame), Some(layout)) = (frame, layout) else {
        return;
    };
    if !view.ready() {
        return;
    }
    let format = CANVAS_FORMAT;
    let size = view.size();
    let history_ok = prepared.history.as_ref().is_some_and(|h| h.2 == size);
    if !history_ok {
        let texture = sized_texture(
            &device,
            "lucid_effect_history",
            size,
            format,
            TextureUsages::TEXTURE_BINDING | TextureUsages::COPY_DST,
            &[],
        );
        let view = texture.create_view(&TextureViewDescriptor::default());
        prepared.history = Some((texture, view, size));
    }
    prepared.keep_output = frame.keep_output;

    let all = frame.passes.iter().chain(frame.master.iter());
    let mut slot = 0;
    for (i, pass) in all.enumerate() {
        let id = *pipelines
            .by_shader
            .entry(pass.shader.id())
            .or_insert_with(|| {
                // Effects store encoded values through the plain view.
                queue_fullscreen_pipeline(
                    &cache,
                    &fullscreen,
                    format!("lucid_effect_{}", pass.key),
                    &layout.layout,
                    pass.shader.clone(),
                    "lucid_fragment",
                    CANVAS_RAW_FORMAT,
                )
            });
        let pipeline = match cache.get_render_pipeline_state(id) {
            CachedPipelineState::Ok(_) => {
                pipelines.ready(&pass.key, id);
                Some(id)
            }
            CachedPipelineState::Err(e) => {
                if pipelines.reported.insert(id)
                    && let Ok(mut errors) = errors.0.lock()
                {
                    errors.push((pass.key.clone(), e.to_string()));
                }
                pipelines.last_good.get(&pass.key).copied()
            }
            _ => pipelines.last_good.get(&pass.key).copied(),
        };
        let Some(pipeline) = pipeline else { continue };
        if prepared.buffers.len() <= slot {
            let make = |label: &str, size: usize| {
                device.create_buffer(&BufferDescriptor {
                    label: Some(label),
                    size: size as u64,
                    usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            };
            let pair = (
                make("lucid_effect_globals", GLOBALS_BYTES),
                make("lucid_effect_params", PARAMS_BYTES),
            );
            prepared.buffers.push(pair);
        }
        let (globals, params) = prepared.buffers[slot].clone();
        slot += 1;
        queue.write_buffer(&globals, 0, &pass.globals);
        queue.write_buffer(&params, 0, &pass.params);
        let prepared_pass = PreparedPass {
            label: format!("lucid_effect/{i}_{}", pass.key),
            pipeline,
            globals,
            params,
        };
        if i < frame.passes.len() {
            prepared.passes.push(prepared_pass);
        } else {
            prepared.master = Some(prepared_pass);
        }
    }
    // The video pass starts where this many passes end in the canvas.
    view.add_planned_passes(prepared.passes.len() + usize::from(prepared.master.is_some()));
}

fn run_chain(
    mut view: ResMut<CanvasView>,
    prepared: Res<PreparedChain>,
    layout: Option<Res<EffectLayout>>,
    cache: Res<PipelineCache>,
    mut ctx: RenderContext,
) {
    let (Some(layout), Some((history_texture, history_view, size))) =
        (layout, prepared.history.as_ref())
    else {
        return;
    };
    if !view.ready() || (prepared.passes.is_empty() && prepared.master.is_none()) {
        return;
    }
    let bind_layout = cache.get_bind_group_layout(&layout.layout);
    let diagnostics = ctx.diagnostic_recorder();
    let diagnostics = diagnostics.as_deref();
    let chain_span = diagnostics.time_span(ctx.command_encoder(), "lucid_effects");
    let run = |pass: &PreparedPass, view: &mut CanvasView, ctx: &mut RenderContext| {
        let Some(pipeline) = cache.get_render_pipeline(pass.pipeline) else {
            return;
        };
        let Some(post) = view.post_process_write() else {
            return;
        };
        let bind_group = ctx.render_device().create_bind_group(
            "lucid_effect_bind_group",
            &bind_layout,
            &BindGroupEntries::sequential((
                post.source,
                &layout.sampler,
                pass.globals.as_entire_binding(),
                pass.params.as_entire_binding(),
                history_view,
                post.source_encoded,
            )),
        );
        let span = diagnostics.time_span(ctx.command_encoder(), pass.label.clone());
        {
            let mut render_pass = begin_pass(ctx, "lucid_effect_pass", post.destination, false);
            render_pass.set_render_pipeline(pipeline);
            render_pass.set_bind_group(0, &bind_group, &[]);
            render_pass.draw(0..3, 0..1);
        }
        span.end(ctx.command_encoder());
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
