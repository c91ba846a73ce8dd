//! The render-world half of the compositor: one full-screen pass per layer
//! ([`CanvasSystems::Layers`], after the video pass and before the effects), each reading
//! the picture so far and the layer's textures and writing the other canvas texture
//! ([`CanvasView::post_process_write`]), `shaders/layer.wgsl`.
//!
//! A layer with its own effects first draws its picture at its own size into a texture of
//! its own (the `picture` entry of the same shader, alpha kept), runs its effect passes
//! there, ping-ponging between two such textures as the master chain does on the canvas
//! (`crate::effects::render`), and the blend pass then places their result.

use std::collections::HashMap;

use bevy::core_pipeline::FullscreenShader;
use bevy::prelude::*;
use bevy::render::{
    Render, RenderApp, RenderStartup, RenderSystems,
    diagnostic::RecordDiagnostics,
    extract_resource::{ExtractResource, ExtractResourcePlugin},
    render_asset::RenderAssets,
    render_resource::{
        binding_types::{sampler, texture_2d, uniform_buffer_sized},
        *,
    },
    renderer::{RenderContext, RenderDevice, RenderGraph, RenderQueue},
    texture::GpuImage,
};

use crate::effects::render::{
    EffectPassPrep, EffectPassRunner, EffectTargets, PassFrame, PreparedPass,
};
use crate::video::pass::{
    begin_pass, bilinear_sampler, embed_shader, extent, queue_fullscreen_pipeline,
};
use crate::video::render::{CANVAS_RAW_FORMAT, CanvasSystems, CanvasTexture, CanvasView};

/// The layer shader, compiled into the binary.
pub const LAYER_SHADER: Handle<Shader> =
    bevy::asset::uuid_handle!("0b8e3c52-61c4-4f0e-9d7a-5a2f4c9e7d11");

/// A layer's uniform: four vec4s (see `shaders/layer.wgsl`).
const LAYER_UNIFORM_BYTES: u64 = 64;

/// One layer to draw this frame, bottom first.
#[derive(Clone, Debug)]
pub struct LayerDraw {
    /// The layer's number, from 1 (names its timing span `lucid_layer/N`).
    pub number: usize,
    /// Its side of the crossfader, when a transition draws the two sides apart (else
    /// `Both`: one picture, the sides weighted by the crossfader).
    pub bus: crate::compositor::Bus,
    /// Y, Cb, Cr planes (the chroma slots are bound, unused, for an RGBA picture too).
    pub planes: [Handle<Image>; 3],
    /// The picture of an RGB source.
    pub rgba: Option<Handle<Image>>,
    /// x: matrix (0 BT.601, 1 BT.709), y: full range, z: RGBA.
    pub video: Vec4,
    /// Where the picture goes: x, y, width, height in canvas pixels.
    pub rect: Vec4,
    /// x: opacity (times any fade and the crossfader), y: blend mode index.
    pub mix: Vec4,
    /// x, y: offset in pixels; z: scale; w: clockwise rotation in radians.
    pub transform: Vec4,
    /// The picture's size in pixels.
    pub size: UVec2,
    /// The layer's own effect passes, run on its picture before it is placed.
    pub effects: Vec<PassFrame>,
    /// An effect reads the layer chain's previous output.
    pub keep_output: bool,
}

/// The layers above the video, extracted every frame.
#[derive(Resource, Clone, Debug, Default, ExtractResource)]
pub struct LayerDraws(pub Vec<LayerDraw>);

/// The crossfader's transition pass (`--transition`) this frame: bus A's picture and bus
/// B's are drawn apart, and it mixes them.
#[derive(Resource, Clone, Debug, Default, ExtractResource)]
pub struct TransitionDraw(pub Option<PassFrame>);

/// Registers the render-world side.
pub(super) fn build(app: &mut App) {
    embed_shader(
        app,
        &LAYER_SHADER,
        include_str!("../../shaders/layer.wgsl"),
        "shaders/layer.wgsl",
    );
    app.init_resource::<LayerDraws>()
        .init_resource::<TransitionDraw>()
        .add_plugins(ExtractResourcePlugin::<LayerDraws>::default())
        .add_plugins(ExtractResourcePlugin::<TransitionDraw>::default());
    let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
        return;
    };
    render_app
        .init_resource::<PreparedLayers>()
        .add_systems(RenderStartup, init_layer_pipeline)
        .add_systems(
            Render,
            prepare_layers
                .in_set(RenderSystems::PrepareResources)
                .in_set(CanvasSystems::PreparePasses)
                .after(CanvasSystems::PrepareView),
        )
        .add_systems(RenderGraph, draw_layers.in_set(CanvasSystems::Layers));
}

#[derive(Resource)]
struct LayerPipeline {
    layout: BindGroupLayoutDescriptor,
    sampler: Sampler,
    /// Places and blends a layer over the canvas.
    pipeline: CachedRenderPipelineId,
    /// Draws a layer's picture at its own size, for its effects.
    picture: CachedRenderPipelineId,
}

/// Each drawable layer's uniform buffer (one per layer: the passes are recorded before the
/// queue's writes land, so a shared buffer would hold the last layer's values for all).
#[derive(Resource, Default)]
struct PreparedLayers {
    buffers: Vec<Buffer>,
    /// Layers whose textures exist this frame, with their buffer's index.
    ready: Vec<(usize, LayerDraw)>,
    /// The layers with effects, by number.
    chains: HashMap<usize, LayerChain>,
    /// The transition, prepared, with the textures it keeps the video's picture (`base`)
    /// and bus A's (`start`) in while bus B is drawn.
    transition: Option<PreparedTransition>,
    transition_buffers: Vec<(Buffer, Buffer)>,
}

struct PreparedTransition {
    pass: PreparedPass,
    size: UVec2,
    base: CanvasTexture,
    start: CanvasTexture,
}

impl PreparedLayers {
    /// The draws of one side (`Both` layers are on each).
    fn side(&self, bus: crate::compositor::Bus) -> impl Iterator<Item = &(usize, LayerDraw)> {
        use crate::compositor::Bus;
        self.ready
            .iter()
            .filter(move |(_, d)| d.bus == Bus::Both || d.bus == bus)
    }
}

/// A layer's own effect chain in the render world: two textures at its picture's size that
/// the passes ping-pong between, the chain's previous output (for feedback effects), and
/// the passes prepared this frame.
struct LayerChain {
    size: UVec2,
    textures: [CanvasTexture; 2],
    history: (Texture, TextureView),
    buffers: Vec<(Buffer, Buffer)>,
    passes: Vec<PreparedPass>,
    keep_output: bool,
}

fn init_layer_pipeline(
    mut commands: Commands,
    device: Res<RenderDevice>,
    fullscreen: Res<FullscreenShader>,
    cache: Res<PipelineCache>,
) {
    let layout = BindGroupLayoutDescriptor::new(
        "lucid_layer_layout",
        &BindGroupLayoutEntries::sequential(
            ShaderStages::FRAGMENT,
            (
                // The backdrop: read with textureLoad, so not filterable.
                texture_2d(TextureSampleType::Float { filterable: false }),
                texture_2d(TextureSampleType::Float { filterable: true }),
                texture_2d(TextureSampleType::Float { filterable: true }),
                texture_2d(TextureSampleType::Float { filterable: true }),
                sampler(SamplerBindingType::Filtering),
                uniform_buffer_sized(
                    false,
                    Some(LAYER_UNIFORM_BYTES.try_into().expect("non-zero")),
                ),
            ),
        ),
    );
    let queue = |label: &str, entry: &'static str| {
        queue_fullscreen_pipeline(
            &cache,
            &fullscreen,
            label.into(),
            &layout,
            LAYER_SHADER,
            entry,
            CANVAS_RAW_FORMAT,
        )
    };
    let (pipeline, picture) = (
        queue("lucid_layer", "fragment"),
        queue("lucid_layer_picture", "picture"),
    );
    commands.insert_resource(LayerPipeline {
        layout,
        sampler: bilinear_sampler(&device, "lucid_layer_sampler"),
        pipeline,
        picture,
    });
}

#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn prepare_layers(
    draws: Res<LayerDraws>,
    transition: Res<TransitionDraw>,
    images: Res<RenderAssets<GpuImage>>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    mut prepared: ResMut<PreparedLayers>,
    mut view: ResMut<CanvasView>,
    mut prep: EffectPassPrep,
) {
    let prepared = &mut *prepared;
    prepared.ready.clear();
    if !view.ready() {
        return;
    }
    // A layer that lost its effects (or went) gives its textures back.
    prepared.chains.retain(|n, _| {
        draws
            .0
            .iter()
            .any(|d| d.number == *n && !d.effects.is_empty())
    });
    for draw in &draws.0 {
        let picture = draw.rgba.as_ref().unwrap_or(&draw.planes[0]);
        if images.get(picture).is_none() || draw.planes.iter().any(|p| images.get(p).is_none()) {
            continue;
        }
        let mut video = draw.video;
        if !draw.effects.is_empty() && prep.ready() {
            if prepared
                .chains
                .get(&draw.number)
                .is_none_or(|c| c.size != draw.size)
            {
                let chain = LayerChain {
                    size: draw.size,
                    textures: [
                        CanvasTexture::create(&device, "lucid_layer_effects_a", draw.size),
                        CanvasTexture::create(&device, "lucid_layer_effects_b", draw.size),
                    ],
                    history: prep.history_texture(draw.size),
                    buffers: Vec::new(),
                    passes: Vec::new(),
                    keep_output: false,
                };
                prepared.chains.insert(draw.number, chain);
            }
            let chain = prepared.chains.get_mut(&draw.number).expect("made above");
            chain.passes = prep
                // Per layer: a multi-pass ISF effect keeps its targets under this label.
                .prepare(
                    &draw.effects,
                    &mut chain.buffers,
                    &format!("layer{}_effect", draw.number),
                )
                .into_iter()
                .flatten()
                .collect();
            chain.keep_output = draw.keep_output;
            // The blend pass reads the chain's result (none ready yet: the source).
            video.w = if chain.passes.is_empty() { 0.0 } else { 1.0 };
        }
        let slot = prepared.ready.len();
        if prepared.buffers.len() <= slot {
            let buffer = device.create_buffer(&BufferDescriptor {
                label: Some("lucid_layer_uniform"),
                size: LAYER_UNIFORM_BYTES,
                usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            prepared.buffers.push(buffer);
        }
        let bytes: Vec<u8> = [video, draw.rect, draw.mix, draw.transform]
            .iter()
            .flat_map(|v| v.to_array())
            .flat_map(f32::to_le_bytes)
            .collect();
        queue.write_buffer(&prepared.buffers[slot], 0, &bytes);
        prepared.ready.push((slot, draw.clone()));
    }
    // A transition draws each side apart from the video's picture, then mixes them.
    let size = view.size();
    let pass = transition
        .0
        .as_ref()
        .filter(|_| prep.ready())
        .and_then(|t| {
            prep.prepare(
                std::slice::from_ref(t),
                &mut prepared.transition_buffers,
                "lucid_transition",
            )
            .pop()
            .flatten()
        });
    prepared.transition = pass.map(|pass| {
        let keep = prepared.transition.take().filter(|t| t.size == size);
        let (base, start) = match keep {
            Some(t) => (t.base, t.start),
            None => (
                CanvasTexture::create(&device, "lucid_transition_base", size),
                CanvasTexture::create(&device, "lucid_transition_start", size),
            ),
        };
        PreparedTransition {
            pass,
            size,
            base,
            start,
        }
    });
    let passes = match prepared.transition {
        Some(_) => {
            prepared.side(crate::compositor::Bus::A).count()
                + prepared.side(crate::compositor::Bus::B).count()
                + 1
        }
        None => prepared.ready.len(),
    };
    view.add_planned_passes(passes);
}

fn draw_layers(
    mut view: ResMut<CanvasView>,
    prepared: Res<PreparedLayers>,
    pipeline: Option<Res<LayerPipeline>>,
    images: Res<RenderAssets<GpuImage>>,
    cache: Res<PipelineCache>,
    runner: EffectPassRunner,
    mut ctx: RenderContext,
) {
    let Some(pipeline) = pipeline else { return };
    if !view.ready() || prepared.ready.is_empty() {
        return;
    }
    let Some(render) = cache.get_render_pipeline(pipeline.pipeline) else {
        return;
    };
    let layout = cache.get_bind_group_layout(&pipeline.layout);
    let diagnostics = ctx.diagnostic_recorder();
    let diagnostics = diagnostics.as_deref();
    // Each layer's picture: its own, or its effects' result, made at its first blend (run
    // once, even when a transition draws it on both sides).
    let mut shown: HashMap<usize, TextureView> = HashMap::new();
    let mut blend =
        |(slot, draw): &(usize, LayerDraw), view: &mut CanvasView, ctx: &mut RenderContext| {
            let picture = draw.rgba.as_ref().unwrap_or(&draw.planes[0]);
            let (Some(first), Some(u), Some(v)) = (
                images.get(picture),
                images.get(&draw.planes[1]),
                images.get(&draw.planes[2]),
            ) else {
                return true;
            };
            let uniform = &prepared.buffers[*slot];
            let planes_with = |backdrop, shown| {
                layer_entries(
                    [backdrop, shown, &u.texture_view, &v.texture_view],
                    &pipeline.sampler,
                    uniform,
                )
            };
            // The layer's whole work (its effects and its blend) is its time.
            let span = diagnostics.time_span(
                ctx.command_encoder(),
                format!("lucid_layer/{}", draw.number),
            );
            if let std::collections::hash_map::Entry::Vacant(slot) = shown.entry(draw.number) {
                let chain = prepared
                    .chains
                    .get(&draw.number)
                    .filter(|c| !c.passes.is_empty());
                let picture = match (chain, cache.get_render_pipeline(pipeline.picture)) {
                    (Some(chain), Some(picture_pipeline)) => {
                        let bind_group = ctx.render_device().create_bind_group(
                            "lucid_layer_picture_bind_group",
                            &layout,
                            &planes_with(&first.texture_view, &first.texture_view),
                        );
                        {
                            let mut pass = begin_pass(
                                ctx,
                                "lucid_layer_picture_pass",
                                &chain.textures[0].raw,
                                false,
                            );
                            pass.set_render_pipeline(picture_pipeline);
                            pass.set_bind_group(0, &bind_group, &[]);
                            pass.draw(0..3, 0..1);
                        }
                        let mut current = 0;
                        for effect in &chain.passes {
                            let (source, destination) =
                                (&chain.textures[current], &chain.textures[1 - current]);
                            if runner.run(
                                ctx,
                                &diagnostics,
                                effect,
                                EffectTargets {
                                    source: &source.srgb,
                                    source_encoded: &source.raw,
                                    history: &chain.history.1,
                                    destination: &destination.raw,
                                    start: None,
                                },
                            ) {
                                current = 1 - current;
                            }
                        }
                        if chain.keep_output {
                            ctx.command_encoder().copy_texture_to_texture(
                                chain.textures[current].texture.as_image_copy(),
                                chain.history.0.as_image_copy(),
                                extent(chain.size),
                            );
                        }
                        chain.textures[current].raw.clone()
                    }
                    _ => first.texture_view.clone(),
                };
                slot.insert(picture);
            }
            let Some(post) = view.post_process_write() else {
                span.end(ctx.command_encoder());
                return false;
            };
            let bind_group = ctx.render_device().create_bind_group(
                "lucid_layer_bind_group",
                &layout,
                &planes_with(post.source_encoded, &shown[&draw.number]),
            );
            {
                let mut pass = begin_pass(ctx, "lucid_layer_pass", post.destination, false);
                pass.set_render_pipeline(render);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.draw(0..3, 0..1);
            }
            span.end(ctx.command_encoder());
            true
        };
    let Some(transition) = &prepared.transition else {
        for draw in &prepared.ready {
            if !blend(draw, &mut view, &mut ctx) {
                return;
            }
        }
        return;
    };
    // The crossfader's transition: bus A drawn over the video's picture and kept aside,
    // the picture put back, bus B drawn over it, and the transition mixes the two.
    let copy = |ctx: &mut RenderContext, from: &Texture, to: &Texture| {
        ctx.command_encoder().copy_texture_to_texture(
            from.as_image_copy(),
            to.as_image_copy(),
            extent(transition.size),
        );
    };
    let Some(current) = view.current().cloned() else {
        return;
    };
    copy(&mut ctx, &current, &transition.base.texture);
    for draw in prepared.side(crate::compositor::Bus::A) {
        if !blend(draw, &mut view, &mut ctx) {
            return;
        }
    }
    let Some(current) = view.current().cloned() else {
        return;
    };
    copy(&mut ctx, &current, &transition.start.texture);
    copy(&mut ctx, &transition.base.texture, &current);
    for draw in prepared.side(crate::compositor::Bus::B) {
        if !blend(draw, &mut view, &mut ctx) {
            return;
        }
    }
    if runner.ready_to_run(&transition.pass)
        && let Some(post) = view.post_process_write()
    {
        runner.run(
            &mut ctx,
            &diagnostics,
            &transition.pass,
            EffectTargets {
                source: post.source,
                source_encoded: post.source_encoded,
                history: &transition.start.srgb,
                destination: post.destination,
                start: Some(&transition.start.raw),
            },
        );
    }
}

/// The layer shader's bindings: the backdrop, the picture (or the effects' result), the
/// chroma planes, the sampler and the layer's uniform.
fn layer_entries<'a>(
    [backdrop, shown, u, v]: [&'a TextureView; 4],
    sampler: &'a Sampler,
    uniform: &'a Buffer,
) -> BindGroupEntries<'a, 6> {
    BindGroupEntries::sequential((backdrop, shown, u, v, sampler, uniform.as_entire_binding()))
}
