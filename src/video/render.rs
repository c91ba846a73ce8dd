//! The render-world half of the canvas: the video pass and the targets every later canvas
//! pass (effects, the master level, the encoders' YUV conversion) works on.
//!
//! No camera is involved. A camera would draw into its own intermediate target and then
//! blit that into the canvas, two full-screen passes where one does the work; on a machine
//! without a GPU every pass is CPU time per pixel. Instead, systems in Bevy's root
//! [`RenderGraph`] schedule, ordered by [`CanvasSystems`] and run before the cameras (so
//! the window shows this update's canvas), draw straight into the canvas texture:
//!
//! 1. [`CanvasSystems::Video`]: the YUV planes, converted to RGB (`shaders/yuv_to_rgb.wgsl`),
//!    letterboxed by the pass's viewport;
//! 2. [`CanvasSystems::Layers`]: the compositor's layers, one pass each, blended over the
//!    picture so far (the compositor's `render` module), ping-ponging as effects do;
//! 3. [`CanvasSystems::Effects`]: each effect (and the master level) reads the picture and
//!    writes the other of two textures, the canvas and a scratch texture
//!    ([`CanvasView::post_process_write`]). The video pass starts in whichever of the two
//!    makes the last pass land in the canvas, so no copy is needed;
//! 4. [`CanvasSystems::Settle`]: only if a planned pass could not run, a copy back into the
//!    canvas;
//! 5. [`CanvasSystems::Convert`]: readers of the finished canvas (the outputs' YUV pass).
//!
//! The passes run only in updates that present a frame ([`CanvasFrame::draw`]). When the
//! canvas would only pass the video through (no pass follows, the video fills it pixel for
//! pixel) and nothing reads it as RGB (no window, no RGBA pipe), an output may take the
//! video planes as they are ([`CanvasView::take_video_directly`]) and the video pass is not
//! run at all.

use bevy::core_pipeline::{FullscreenShader, schedule::camera_driver};
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
    renderer::{RenderContext, RenderDevice, RenderGraph, RenderGraphSystems, RenderQueue},
    texture::GpuImage,
};

use super::pass::{
    self, VEC4_BYTES, begin_pass, bilinear_sampler, embed_shader, queue_fullscreen_pipeline,
    vec4_bytes, vec4_uniform,
};
use crate::decode::ColorMatrix;

/// The video shader, compiled into the binary so Lucid runs from any working directory.
pub const YUV_SHADER: Handle<Shader> =
    bevy::asset::uuid_handle!("6d1f6f3e-2a43-4c84-9a55-3b8f7f1c2e01");

/// The canvas's format. Effects read and write it through this (sRGB) view, so their maths
/// sees linear light; the video pass and the YUV conversion use [`CANVAS_RAW_FORMAT`].
pub const CANVAS_FORMAT: TextureFormat = TextureFormat::Rgba8UnormSrgb;
/// The same bytes without the sRGB transfer: gamma-encoded values as video carries them.
pub const CANVAS_RAW_FORMAT: TextureFormat = TextureFormat::Rgba8Unorm;

/// The order of the canvas passes in the [`RenderGraph`] schedule (and of their preparation
/// in the `Render` schedule).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum CanvasSystems {
    /// `Render` schedule: the canvas targets for this frame exist.
    PrepareView,
    /// `Render` schedule: the passes after the video pass are planned.
    PreparePasses,
    /// The video pass.
    Video,
    /// The compositor's layers over the video.
    Layers,
    /// The effect chain and the master level.
    Effects,
    /// The picture is back in the canvas texture.
    Settle,
    /// Passes that read the finished canvas.
    Convert,
}

/// What the main world asks of the canvas this update, extracted every frame.
#[derive(Resource, Clone, Debug, Default, ExtractResource)]
pub struct CanvasFrame {
    /// Draw the canvas this update (a new frame, a redraw, or a warm-up update).
    pub draw: bool,
    /// The canvas image (the output of every pass) and its size.
    pub canvas: Option<(Handle<Image>, UVec2)>,
    /// The video planes: Y, Cb, Cr.
    pub planes: Option<[Handle<Image>; 3]>,
    /// Matrix and range of the planes, as [`video_params`] packs them.
    pub params: Vec4,
    /// Where the picture goes in the canvas: x, y, width, height in pixels.
    pub rect: Vec4,
    /// Something reads the canvas's RGB (see [`CanvasReaders`]).
    pub rgba_read: bool,
    /// The picture of an RGB source (RGBA); when set, the planes are not drawn.
    pub rgba: Option<Handle<Image>>,
}

/// Whether anything reads the canvas as RGB: the window's preview, screenshots, a raw RGBA
/// pipe. Without such a reader an output may take the video planes directly. The app
/// inserts it; absent, the canvas counts as read.
#[derive(Resource, Debug, Clone, Copy)]
pub struct CanvasReaders {
    /// The canvas's RGB is read.
    pub rgba: bool,
}

/// The shader uniform for a frame's colour description: x 0 = BT.601, 1 = BT.709;
/// y 1 = full range.
pub fn video_params(matrix: ColorMatrix, full_range: bool) -> Vec4 {
    let m = match matrix {
        ColorMatrix::Bt601 => 0.0,
        ColorMatrix::Bt709 => 1.0,
    };
    Vec4::new(m, if full_range { 1.0 } else { 0.0 }, 0.0, 0.0)
}

/// One texture the canvas passes draw in, with both views (also a compositor layer's
/// textures for its own effects).
pub struct CanvasTexture {
    /// The texture ([`CANVAS_FORMAT`], viewable as [`CANVAS_RAW_FORMAT`]).
    pub texture: Texture,
    /// sRGB view: effects sample and write linear light through it.
    pub srgb: TextureView,
    /// Plain view: the video pass writes, and the YUV pass reads, encoded values.
    pub raw: TextureView,
}

impl CanvasTexture {
    /// A new `size` texture that passes draw in, read, copy from and copy into.
    pub fn create(device: &RenderDevice, label: &'static str, size: UVec2) -> CanvasTexture {
        CanvasTexture::new(pass::sized_texture(
            device,
            label,
            size,
            CANVAS_FORMAT,
            TextureUsages::RENDER_ATTACHMENT
                | TextureUsages::TEXTURE_BINDING
                | TextureUsages::COPY_SRC
                // A transition puts the video's picture back before drawing bus B.
                | TextureUsages::COPY_DST,
            &[CANVAS_RAW_FORMAT],
        ))
    }

    fn new(texture: Texture) -> CanvasTexture {
        let view = |format| {
            texture.create_view(&TextureViewDescriptor {
                format: Some(format),
                ..default()
            })
        };
        CanvasTexture {
            srgb: view(CANVAS_FORMAT),
            raw: view(CANVAS_RAW_FORMAT),
            texture,
        }
    }
}

/// The source and destination of one pass over the canvas.
pub struct CanvasWrite<'a> {
    /// The picture so far (sRGB view: filtered samples in linear light).
    pub source: &'a TextureView,
    /// The picture so far (plain view: encoded values).
    pub source_encoded: &'a TextureView,
    /// Where the pass writes (plain view: it stores encoded values).
    pub destination: &'a TextureView,
}

/// The canvas and its scratch texture in the render world, and which one holds the picture.
#[derive(Resource, Default)]
pub struct CanvasView {
    /// The canvas image this was made for, and its texture; then the scratch texture.
    targets: Option<(AssetId<Image>, CanvasTexture, CanvasTexture)>,
    size: UVec2,
    /// Passes planned after the video pass this frame (set while preparing them).
    following: usize,
    /// True while the picture is in the scratch texture.
    in_scratch: bool,
    /// False when this frame's canvas could not be prepared (no passes then).
    ready: bool,
    /// The video fills the canvas pixel for pixel and nothing reads the RGB.
    passthrough: bool,
    /// An output takes the video planes themselves this frame: no video pass.
    direct: bool,
}

impl CanvasView {
    /// The canvas size in pixels.
    pub fn size(&self) -> UVec2 {
        self.size
    }

    /// True when the canvas exists and this frame draws it.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Tells the video pass that `count` more passes follow it this frame (layers and
    /// effects each add theirs), so it can start in the texture that makes the last one
    /// land in the canvas.
    pub fn add_planned_passes(&mut self, count: usize) {
        self.following += count;
    }

    /// True when the canvas would be the video planes converted to RGB and nothing else:
    /// no pass follows, the video fills the canvas at its own size, and no one reads RGB.
    pub fn is_passthrough(&self) -> bool {
        self.ready && self.passthrough && self.following == 0
    }

    /// An output takes the planes directly: the video pass is not run this frame (only
    /// when [`Self::is_passthrough`]).
    pub fn take_video_directly(&mut self) {
        self.direct = self.is_passthrough();
    }

    /// True when an output took the planes directly this frame.
    pub fn takes_video_directly(&self) -> bool {
        self.direct
    }

    fn textures(&self) -> Option<(&CanvasTexture, &CanvasTexture)> {
        self.targets
            .as_ref()
            .map(|(_, canvas, scratch)| (canvas, scratch))
    }

    /// Where the video pass writes (plain view), chosen by the number of planned passes.
    fn start(&mut self) -> Option<&TextureView> {
        self.in_scratch = self.following % 2 == 1;
        let (canvas, scratch) = self.textures()?;
        Some(if self.in_scratch {
            &scratch.raw
        } else {
            &canvas.raw
        })
    }

    /// The next pass reads the picture and writes the other texture.
    pub fn post_process_write(&mut self) -> Option<CanvasWrite<'_>> {
        self.in_scratch = !self.in_scratch;
        let (canvas, scratch) = self.textures()?;
        let (source, destination) = if self.in_scratch {
            (canvas, scratch)
        } else {
            (scratch, canvas)
        };
        Some(CanvasWrite {
            source: &source.srgb,
            source_encoded: &source.raw,
            destination: &destination.raw,
        })
    }

    /// The texture that holds the picture now (for copies such as the feedback history).
    pub fn current(&self) -> Option<&Texture> {
        let (canvas, scratch) = self.textures()?;
        Some(if self.in_scratch {
            &scratch.texture
        } else {
            &canvas.texture
        })
    }

    /// The finished canvas through its plain view (for passes in [`CanvasSystems::Convert`]).
    pub fn canvas_raw(&self) -> Option<&TextureView> {
        self.textures().map(|(canvas, _)| &canvas.raw)
    }
}

/// Registers the render-world side. Called from [`super::VideoPlugin`].
pub(super) fn build(app: &mut App) {
    embed_shader(
        app,
        &YUV_SHADER,
        include_str!("../../shaders/yuv_to_rgb.wgsl"),
        "shaders/yuv_to_rgb.wgsl",
    );
    app.init_resource::<CanvasFrame>()
        .add_plugins(ExtractResourcePlugin::<CanvasFrame>::default());
    let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
        return;
    };
    render_app
        .init_resource::<CanvasView>()
        .add_systems(RenderStartup, init_video_pipeline)
        .add_systems(
            Render,
            (
                prepare_canvas
                    .in_set(RenderSystems::PrepareResources)
                    .in_set(CanvasSystems::PrepareView),
                // An update that presents nothing must not draw again with the last
                // update's request.
                end_frame.in_set(RenderSystems::Cleanup),
            ),
        )
        .configure_sets(
            RenderGraph,
            (
                CanvasSystems::Video,
                CanvasSystems::Layers,
                CanvasSystems::Effects,
                CanvasSystems::Settle,
                CanvasSystems::Convert,
            )
                .chain()
                .in_set(RenderGraphSystems::Render)
                .before(camera_driver),
        )
        .add_systems(
            RenderGraph,
            (
                draw_video.in_set(CanvasSystems::Video),
                settle_canvas.in_set(CanvasSystems::Settle),
            ),
        );
}

#[derive(Resource)]
struct VideoPipeline {
    layout: BindGroupLayoutDescriptor,
    sampler: Sampler,
    /// Y'CbCr planes.
    pipeline: CachedRenderPipelineId,
    /// One RGBA texture (in the luma slot).
    rgba_pipeline: CachedRenderPipelineId,
    params: Buffer,
}

fn init_video_pipeline(
    mut commands: Commands,
    device: Res<RenderDevice>,
    fullscreen: Res<FullscreenShader>,
    cache: Res<PipelineCache>,
) {
    let layout = BindGroupLayoutDescriptor::new(
        "lucid_video_layout",
        &BindGroupLayoutEntries::sequential(
            ShaderStages::FRAGMENT,
            (
                texture_2d(TextureSampleType::Float { filterable: true }),
                texture_2d(TextureSampleType::Float { filterable: true }),
                texture_2d(TextureSampleType::Float { filterable: true }),
                sampler(SamplerBindingType::Filtering),
                uniform_buffer_sized(false, Some(VEC4_BYTES.try_into().expect("non-zero"))),
            ),
        ),
    );
    // Bilinear: scaling to the output size, and chroma up to luma's resolution.
    let sampler = bilinear_sampler(&device, "lucid_video_sampler");
    let pipeline = queue_fullscreen_pipeline(
        &cache,
        &fullscreen,
        "lucid_video".into(),
        &layout,
        YUV_SHADER,
        "fragment",
        CANVAS_RAW_FORMAT,
    );
    let rgba_pipeline = queue_fullscreen_pipeline(
        &cache,
        &fullscreen,
        "lucid_video_rgba".into(),
        &layout,
        YUV_SHADER,
        "fragment_rgba",
        CANVAS_RAW_FORMAT,
    );
    let params = vec4_uniform(&device, "lucid_video_params");
    commands.insert_resource(VideoPipeline {
        layout,
        sampler,
        pipeline,
        rgba_pipeline,
        params,
    });
}

/// Finds the canvas texture, makes the scratch texture beside it when the canvas is new,
/// and writes the video uniform.
fn prepare_canvas(
    frame: Res<CanvasFrame>,
    images: Res<RenderAssets<GpuImage>>,
    pipeline: Option<Res<VideoPipeline>>,
    device: Res<RenderDevice>,
    queue: Res<RenderQueue>,
    mut view: ResMut<CanvasView>,
) {
    view.ready = false;
    view.following = 0;
    view.in_scratch = false;
    view.direct = false;
    let Some((handle, size)) = &frame.canvas else {
        return;
    };
    let Some(canvas) = images.get(handle) else {
        return;
    };
    let current = view.targets.as_ref().map(|(id, ..)| *id);
    if current != Some(handle.id()) {
        view.targets = Some((
            handle.id(),
            CanvasTexture::new(canvas.texture.clone()),
            CanvasTexture::create(&device, "lucid_canvas_scratch", *size),
        ));
        view.size = *size;
    }
    if let Some(pipeline) = pipeline {
        queue.write_buffer(&pipeline.params, 0, &vec4_bytes(frame.params));
    }
    let full = Vec4::new(0.0, 0.0, size.x as f32, size.y as f32);
    let same_size = frame
        .planes
        .as_ref()
        .and_then(|p| images.get(&p[0]))
        .is_some_and(|y| y.texture.width() == size.x && y.texture.height() == size.y);
    view.passthrough = frame.rgba.is_none() && !frame.rgba_read && frame.rect == full && same_size;
    view.ready = frame.draw;
}

fn end_frame(mut frame: ResMut<CanvasFrame>) {
    frame.draw = false;
}

fn draw_video(
    frame: Res<CanvasFrame>,
    pipeline: Option<Res<VideoPipeline>>,
    images: Res<RenderAssets<GpuImage>>,
    cache: Res<PipelineCache>,
    mut view: ResMut<CanvasView>,
    mut ctx: RenderContext,
) {
    if !view.ready || view.direct {
        return;
    }
    let (Some(pipeline), Some(planes)) = (pipeline, frame.planes.as_ref()) else {
        return;
    };
    // An RGB source's picture takes the luma slot (the chroma slots hold the unused
    // planes: the layout is the same for both pipelines).
    let (id, first) = match &frame.rgba {
        Some(rgba) => (pipeline.rgba_pipeline, rgba),
        None => (pipeline.pipeline, &planes[0]),
    };
    let (Some(render), Some(y), Some(u), Some(v)) = (
        cache.get_render_pipeline(id),
        images.get(first),
        images.get(&planes[1]),
        images.get(&planes[2]),
    ) else {
        return;
    };
    let size = view.size().as_vec2();
    let rect = frame.rect;
    // Letterboxed: the bars are cleared; a picture that covers the canvas overwrites
    // every pixel, and a clear would be one more pass over them.
    let covers = rect.x <= 0.0 && rect.y <= 0.0 && rect.z >= size.x && rect.w >= size.y;
    let bind_group = ctx.render_device().create_bind_group(
        "lucid_video_bind_group",
        &cache.get_bind_group_layout(&pipeline.layout),
        &BindGroupEntries::sequential((
            &y.texture_view,
            &u.texture_view,
            &v.texture_view,
            &pipeline.sampler,
            pipeline.params.as_entire_binding(),
        )),
    );
    let Some(target) = view.start().cloned() else {
        return;
    };
    let diagnostics = ctx.diagnostic_recorder();
    let diagnostics = diagnostics.as_deref();
    let span = diagnostics.time_span(ctx.command_encoder(), "lucid_video");
    {
        let mut pass = begin_pass(&mut ctx, "lucid_video_pass", &target, !covers);
        pass.set_viewport(rect.x, rect.y, rect.z, rect.w, 0.0, 1.0);
        pass.set_render_pipeline(render);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.draw(0..3, 0..1);
    }
    span.end(ctx.command_encoder());
}

/// A planned pass that could not run leaves the picture in the scratch texture: copy it
/// into the canvas, which is what everything downstream reads.
fn settle_canvas(view: Res<CanvasView>, mut ctx: RenderContext) {
    if !view.ready || !view.in_scratch {
        return;
    }
    let Some((canvas, scratch)) = view.textures() else {
        return;
    };
    ctx.command_encoder().copy_texture_to_texture(
        scratch.texture.as_image_copy(),
        canvas.texture.as_image_copy(),
        pass::extent(view.size()),
    );
}
