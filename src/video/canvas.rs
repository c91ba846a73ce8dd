//! The output canvas and the video's textures: sizes (the output size, letterboxing) and
//! the images the decoded planes and the canvas live in.

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat, TextureUsages};

use super::render::{CANVAS_FORMAT, CANVAS_RAW_FORMAT, CanvasFrame, video_params};
use super::{OutputCanvas, PlaybackStats, VideoTexture};
use crate::decode::frame::{chroma_size, even_side};

/// The size at which `content` fits inside `container` with its aspect ratio kept.
pub fn letterbox(content: UVec2, container: UVec2) -> Vec2 {
    let c = content.max(UVec2::ONE).as_vec2();
    let k = container.as_vec2();
    let scale = (k.x / c.x).min(k.y / c.y);
    c * scale
}

fn plane_image(width: u32, height: u32, fill: u8) -> Image {
    video_image(width, height, TextureFormat::R8Unorm, &[fill])
}

/// A texture the decoded pixels are written into each frame.
pub fn video_image(width: u32, height: u32, format: TextureFormat, fill: &[u8]) -> Image {
    let mut image = Image::new_fill(
        Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        fill,
        format,
        // Render world only: the pixels move to the GPU instead of being cloned each frame.
        RenderAssetUsages::RENDER_WORLD,
    );
    image.texture_descriptor.usage |= TextureUsages::COPY_DST;
    image
}

/// Y, Cb and Cr textures for a 4:2:0 picture of `size`, filled black.
pub fn video_planes(
    images: &mut Assets<Image>,
    size: UVec2,
) -> (Handle<Image>, Handle<Image>, Handle<Image>) {
    let (cw, ch) = chroma_size(size.x, size.y);
    (
        images.add(plane_image(size.x, size.y, 16)),
        images.add(plane_image(cw, ch, 128)),
        images.add(plane_image(cw, ch, 128)),
    )
}

pub(super) fn setup_canvas(
    commands: &mut Commands,
    images: &mut Assets<Image>,
    canvas_frame: &mut CanvasFrame,
    stream: UVec2,
    size: UVec2,
    rgba_read: bool,
) {
    let mut target = Image::new_target_texture(size.x, size.y, CANVAS_FORMAT, None);
    // Copied from (outputs' readback, feedback) and into (a transition restores the
    // video's picture before drawing the crossfader's B side).
    target.texture_descriptor.usage |= TextureUsages::COPY_SRC | TextureUsages::COPY_DST;
    // The video pass writes, and the YUV pass reads, the encoded bytes (render::CanvasView).
    target.texture_descriptor.view_formats = &[CANVAS_RAW_FORMAT];
    // Nothing on the CPU reads the canvas's initial pixels: the render world takes them.
    target.asset_usage = RenderAssetUsages::RENDER_WORLD;
    let target = images.add(target);
    commands.insert_resource(OutputCanvas {
        image: target.clone(),
        size,
    });

    // The textures exist before the first frame, so the first presented frame is drawn.
    let (y, u, v) = video_planes(images, stream);
    *canvas_frame = CanvasFrame {
        draw: false,
        canvas: Some((target, size)),
        planes: Some([y.clone(), u.clone(), v.clone()]),
        params: video_params(crate::decode::ColorMatrix::Bt709, false),
        rect: letterbox_rect(stream, size),
        rgba_read,
        rgba: None,
    };
    commands.insert_resource(VideoTexture {
        y,
        u,
        v,
        size: stream,
        rgba: None,
    });
    commands.insert_resource(PlaybackStats {
        texture_allocations: 1,
        ..default()
    });
}

/// The rectangle (x, y, width, height) where `content` sits in `container`, letterboxed
/// and centred.
pub fn letterbox_rect(content: UVec2, container: UVec2) -> Vec4 {
    let fitted = letterbox(content, container);
    let offset = (container.as_vec2() - fitted) / 2.0;
    Vec4::new(offset.x, offset.y, fitted.x, fitted.y)
}

/// The size Lucid renders and records at: the user's `--width`/`--height`, with a missing
/// side derived from the stream's aspect ratio, or the stream's own size. Sides are rounded
/// to even numbers because 4:2:0 encoders and YUV4MPEG2 need them, and kept within
/// 2..=[`MAX_TEXTURE_SIDE`](crate::decode::MAX_TEXTURE_SIDE) (a derived side of a very wide
/// or tall stream included).
pub fn output_size(width: Option<u32>, height: Option<u32>, stream: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (stream.0.max(1) as f64, stream.1.max(1) as f64);
    let (w, h) = match (width, height) {
        (Some(w), Some(h)) => (w as f64, h as f64),
        (Some(w), None) => (w as f64, w as f64 * sh / sw),
        (None, Some(h)) => (h as f64 * sw / sh, h as f64),
        (None, None) => (sw, sh),
    };
    (even_side(w), even_side(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_side_keeps_aspect_ratio() {
        assert_eq!(output_size(Some(640), None, (1280, 720)), (640, 360));
        assert_eq!(output_size(None, Some(360), (1280, 720)), (640, 360));
        assert_eq!(output_size(None, None, (1280, 720)), (1280, 720));
        assert_eq!(output_size(Some(300), Some(300), (1280, 720)), (300, 300));
        // Odd results are rounded to even for 4:2:0 output.
        assert_eq!(output_size(Some(101), None, (100, 100)), (102, 102));
        // A derived side stays within bounds, however extreme the stream's shape.
        assert_eq!(output_size(None, Some(8192), (16448, 16)), (8192, 8192));
        assert_eq!(output_size(Some(16), None, (1, u32::MAX)), (16, 8192));
        assert_eq!(output_size(None, None, (0, 0)), (2, 2));
    }
}
