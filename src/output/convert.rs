//! The outputs' YUV conversion on the GPU (`shaders/rgb_to_yuv.wgsl`): the finished canvas
//! becomes planar 4:2:0 in one R8 texture ([`YuvTarget`]), which is what the encoders read
//! back — 1.5 bytes a pixel instead of 4, and no RGBA→YUV conversion on the CPU.
//!
//! Layout of the texture (width W, height H × 3/2): rows 0..H are Y; the rows below hold Cb
//! in their left half and Cr in their right half. [`YuvLayout::unpack`] copies the rows
//! into an encoder frame's planes.
//!
//! The matrix is the output's ([`ColorMatrix::conventional`] for its height, limited range).
//! When the canvas would be the video passed through unchanged and the video already is in
//! that matrix and range ([`CanvasView::is_passthrough`]), the planes are copied into the
//! target on the GPU instead, and neither the video pass nor this one runs: the recording
//! gets the decoded samples exactly.

use bevy::asset::RenderAssetUsages;
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
use ffmpeg_next as ff;

use crate::decode::ColorMatrix;
use crate::video::pass::{
    VEC4_BYTES, begin_pass, bilinear_sampler, embed_shader, queue_fullscreen_pipeline, vec4_bytes,
    vec4_uniform,
};
use crate::video::render::{CanvasFrame, CanvasSystems, CanvasView, video_params};

/// The conversion shader, compiled into the binary.
const RGB_TO_YUV_SHADER: Handle<Shader> =
    bevy::asset::uuid_handle!("0b6f3c1e-5d1a-4f7e-9a3b-7c2d8e4f5a61");

/// The R8 texture the canvas is converted into, in the main world (created when an output
/// that encodes YUV starts) and extracted to the render world.
#[derive(Resource, Clone, Debug, ExtractResource)]
pub struct YuvTarget {
    /// The texture, read back for the encoders.
    pub image: Handle<Image>,
    /// The matrix the outputs are tagged with (limited range).
    pub matrix: ColorMatrix,
}

impl YuvTarget {
    /// A target for a canvas of `width` x `height` (both even), in `matrix`.
    pub fn new(
        images: &mut Assets<Image>,
        width: u32,
        height: u32,
        matrix: ColorMatrix,
    ) -> YuvTarget {
        let layout = YuvLayout::new(width, height);
        let mut image =
            Image::new_target_texture(width, layout.texture_height(), TextureFormat::R8Unorm, None);
        image.texture_descriptor.usage = TextureUsages::RENDER_ATTACHMENT | TextureUsages::COPY_SRC;
        image.asset_usage = RenderAssetUsages::RENDER_WORLD;
        YuvTarget {
            image: images.add(image),
            matrix,
        }
    }
}

/// Registers the conversion pass. Called from [`super::OutputPlugin`].
pub(super) fn build(app: &mut App) {
    embed_shader(
        app,
        &RGB_TO_YUV_SHADER,
        include_str!("../../shaders/rgb_to_yuv.wgsl"),
        "shaders/rgb_to_yuv.wgsl",
    );
    app.add_plugins(ExtractResourcePlugin::<YuvTarget>::default());
    let Some(render_app) = app.get_sub_app_mut(RenderApp) else {
        return;
    };
    render_app
        .add_systems(RenderStartup, init_pipelines)
        .add_systems(
            Render,
            prepare_conversion
                .in_set(RenderSystems::PrepareResources)
                .after(CanvasSystems::PreparePasses),
        )
        .add_systems(RenderGraph, convert.in_set(CanvasSystems::Convert));
}

#[derive(Resource)]
struct YuvPipelines {
    layout: BindGroupLayoutDescriptor,
    sampler: Sampler,
    /// The matrix: x 0 = BT.601, 1 = BT.709.
    params: Buffer,
    /// Writes the Y rows.
    luma: CachedRenderPipelineId,
    /// Writes the Cb|Cr rows.
    chroma: CachedRenderPipelineId,
}

fn init_pipelines(
    mut commands: Commands,
    device: Res<RenderDevice>,
    fullscreen: Res<FullscreenShader>,
    cache: Res<PipelineCache>,
) {
    let layout = BindGroupLayoutDescriptor::new(
        "lucid_yuv_layout",
        &BindGroupLayoutEntries::sequential(
            ShaderStages::FRAGMENT,
            (
                texture_2d(TextureSampleType::Float { filterable: true }),
                sampler(SamplerBindingType::Filtering),
                uniform_buffer_sized(false, Some(VEC4_BYTES.try_into().expect("non-zero"))),
            ),
        ),
    );
    let pipeline = |entry: &'static str| {
        queue_fullscreen_pipeline(
            &cache,
            &fullscreen,
            format!("lucid_yuv_{entry}"),
            &layout,
            RGB_TO_YUV_SHADER,
            entry,
            TextureFormat::R8Unorm,
        )
    };
    let (luma, chroma) = (pipeline("luma"), pipeline("chroma"));
    // Chroma is the mean of 2x2 pixels: one bilinear fetch at their shared corner.
    let sampler = bilinear_sampler(&device, "lucid_yuv_sampler");
    let params = vec4_uniform(&device, "lucid_yuv_params");
    commands.insert_resource(YuvPipelines {
        layout,
        sampler,
        params,
        luma,
        chroma,
    });
}

/// Writes the matrix, and takes the video planes directly when they already are the output.
fn prepare_conversion(
    target: Option<Res<YuvTarget>>,
    pipelines: Option<Res<YuvPipelines>>,
    frame: Res<CanvasFrame>,
    queue: Res<RenderQueue>,
    mut view: ResMut<CanvasView>,
) {
    let (Some(target), Some(pipelines)) = (target, pipelines) else {
        return;
    };
    let params = video_params(target.matrix, false);
    queue.write_buffer(&pipelines.params, 0, &vec4_bytes(params));
    if frame.params == params {
        view.take_video_directly();
    }
}

/// One pass with two draws, each limited by its viewport to its rows; or, when the output
/// takes the video directly, three plane copies.
fn convert(
    target: Option<Res<YuvTarget>>,
    pipelines: Option<Res<YuvPipelines>>,
    view: Res<CanvasView>,
    frame: Res<CanvasFrame>,
    images: Res<RenderAssets<GpuImage>>,
    cache: Res<PipelineCache>,
    mut ctx: RenderContext,
) {
    let (Some(target), Some(pipelines), Some(canvas)) = (target, pipelines, view.canvas_raw())
    else {
        return;
    };
    if !view.ready() {
        return;
    }
    let Some(output) = images.get(&target.image) else {
        return;
    };
    let size = view.size();
    if view.takes_video_directly() {
        copy_planes(&frame, &images, &output.texture, size, &mut ctx);
        return;
    }
    let (Some(luma), Some(chroma)) = (
        cache.get_render_pipeline(pipelines.luma),
        cache.get_render_pipeline(pipelines.chroma),
    ) else {
        return;
    };
    let bind_group = ctx.render_device().create_bind_group(
        "lucid_yuv_bind_group",
        &cache.get_bind_group_layout(&pipelines.layout),
        &BindGroupEntries::sequential((
            canvas,
            &pipelines.sampler,
            pipelines.params.as_entire_binding(),
        )),
    );
    let diagnostics = ctx.diagnostic_recorder();
    let diagnostics = diagnostics.as_deref();
    let span = diagnostics.time_span(ctx.command_encoder(), "lucid_yuv");
    {
        // Every pixel is written by one of the two draws: no clear.
        let mut pass = begin_pass(&mut ctx, "lucid_yuv_pass", &output.texture_view, false);
        pass.set_bind_group(0, &bind_group, &[]);
        let (w, h) = (size.x as f32, size.y as f32);
        pass.set_viewport(0.0, 0.0, w, h, 0.0, 1.0);
        pass.set_render_pipeline(luma);
        pass.draw(0..3, 0..1);
        pass.set_viewport(0.0, h, w, h / 2.0, 0.0, 1.0);
        pass.set_render_pipeline(chroma);
        pass.draw(0..3, 0..1);
    }
    span.end(ctx.command_encoder());
}

/// The video planes into the target's Y rows and Cb|Cr halves.
fn copy_planes(
    frame: &CanvasFrame,
    images: &RenderAssets<GpuImage>,
    output: &Texture,
    size: UVec2,
    ctx: &mut RenderContext,
) {
    let Some(planes) = frame.planes.as_ref() else {
        return;
    };
    let diagnostics = ctx.diagnostic_recorder();
    let diagnostics = diagnostics.as_deref();
    let span = diagnostics.time_span(ctx.command_encoder(), "lucid_yuv");
    let origins = [(0, 0), (0, size.y), (size.x / 2, size.y)];
    for (plane, (x, y)) in planes.iter().zip(origins) {
        let Some(plane) = images.get(plane) else {
            continue;
        };
        ctx.command_encoder().copy_texture_to_texture(
            plane.texture.as_image_copy(),
            TexelCopyTextureInfo {
                texture: output,
                mip_level: 0,
                origin: Origin3d { x, y, z: 0 },
                aspect: TextureAspect::All,
            },
            plane.texture.size(),
        );
    }
    span.end(ctx.command_encoder());
}

/// Where the planes are in a read-back [`YuvTarget`] (rows padded to 256 bytes, as wgpu
/// copies textures into buffers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvLayout {
    width: usize,
    height: usize,
    padded_row: usize,
}

impl YuvLayout {
    /// The layout for a canvas of `width` x `height` (both even).
    pub fn new(width: u32, height: u32) -> YuvLayout {
        let width = width as usize;
        YuvLayout {
            width,
            height: height as usize,
            padded_row: width.div_ceil(256) * 256,
        }
    }

    /// Rows of the texture: Y's, then half as many for Cb|Cr.
    pub fn texture_height(&self) -> u32 {
        (self.height + self.height / 2) as u32
    }

    /// Bytes of one read-back frame.
    pub fn bytes(&self) -> usize {
        self.padded_row * self.texture_height() as usize
    }

    /// Copies a read-back frame into a YUV420P frame of the canvas's size. `false` when the
    /// buffer is too short (a read-back of another size), and the frame is left as it was.
    pub fn unpack(&self, padded: &[u8], frame: &mut ff::frame::Video) -> bool {
        if padded.len() < self.bytes() {
            return false;
        }
        let (w, h, row) = (self.width, self.height, self.padded_row);
        let half = w / 2;
        let stride = frame.stride(0);
        let y = frame.data_mut(0);
        for r in 0..h {
            y[r * stride..r * stride + w].copy_from_slice(&padded[r * row..r * row + w]);
        }
        for (plane, from) in [(1, 0), (2, half)] {
            let stride = frame.stride(plane);
            let dst = frame.data_mut(plane);
            for r in 0..h / 2 {
                let src = (h + r) * row + from;
                dst[r * stride..r * stride + half].copy_from_slice(&padded[src..src + half]);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_land_in_their_planes() {
        // 6x4: Y rows, then two rows of Cb (left 3 bytes) | Cr (right 3 bytes).
        let layout = YuvLayout::new(6, 4);
        assert_eq!(layout.texture_height(), 6);
        let mut padded = vec![0u8; layout.bytes()];
        for r in 0..6 {
            for c in 0..6 {
                padded[r * 256 + c] = (r * 10 + c) as u8;
            }
        }
        ff::init().expect("ffmpeg");
        let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, 6, 4);
        assert!(layout.unpack(&padded, &mut frame));
        let row = |plane: usize, r: usize, n: usize| {
            let s = frame.stride(plane);
            frame.data(plane)[r * s..r * s + n].to_vec()
        };
        assert_eq!(row(0, 3, 6), vec![30, 31, 32, 33, 34, 35]);
        assert_eq!(row(1, 0, 3), vec![40, 41, 42]);
        assert_eq!(row(2, 1, 3), vec![53, 54, 55]);
        assert!(!layout.unpack(&padded[..10], &mut frame), "short buffer");
    }
}
