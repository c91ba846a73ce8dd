//! What every canvas pass (the video pass, effects, the outputs' YUV pass) builds the same
//! way: an embedded shader, a full-screen-triangle pipeline with one colour target, a
//! bilinear sampler, a `vec4` uniform, and a render pass into one texture.

use bevy::core_pipeline::FullscreenShader;
use bevy::prelude::*;
use bevy::render::{
    render_phase::TrackedRenderPass,
    render_resource::*,
    renderer::{RenderContext, RenderDevice},
};

/// Registers WGSL compiled into the binary under `handle`, so Lucid runs from any working
/// directory.
pub fn embed_shader(
    app: &mut App,
    handle: &Handle<Shader>,
    source: &'static str,
    path: &'static str,
) {
    app.world_mut()
        .resource_mut::<Assets<Shader>>()
        .insert(handle, Shader::from_wgsl(source, path))
        .expect("inserting an embedded shader");
}

/// Queues a pipeline that draws the full-screen triangle with `shader`'s `entry` into one
/// target of `format`, without blending.
pub fn queue_fullscreen_pipeline(
    cache: &PipelineCache,
    fullscreen: &FullscreenShader,
    label: String,
    layout: &BindGroupLayoutDescriptor,
    shader: Handle<Shader>,
    entry: &'static str,
    format: TextureFormat,
) -> CachedRenderPipelineId {
    cache.queue_render_pipeline(RenderPipelineDescriptor {
        label: Some(label.into()),
        layout: vec![layout.clone()],
        vertex: fullscreen.to_vertex_state(),
        fragment: Some(FragmentState {
            shader,
            entry_point: Some(entry.into()),
            targets: vec![Some(ColorTargetState {
                format,
                blend: None,
                write_mask: ColorWrites::ALL,
            })],
            ..default()
        }),
        ..default()
    })
}

/// A bilinear sampler, clamped at the edges.
pub fn bilinear_sampler(device: &RenderDevice, label: &'static str) -> Sampler {
    device.create_sampler(&SamplerDescriptor {
        label: Some(label),
        mag_filter: FilterMode::Linear,
        min_filter: FilterMode::Linear,
        ..default()
    })
}

/// The extent of a 2D texture of `size`.
pub fn extent(size: UVec2) -> Extent3d {
    Extent3d {
        width: size.x,
        height: size.y,
        depth_or_array_layers: 1,
    }
}

/// A 2D texture of `size` (one mip level, one sample), such as the canvas's scratch and
/// history textures.
pub fn sized_texture(
    device: &RenderDevice,
    label: &'static str,
    size: UVec2,
    format: TextureFormat,
    usage: TextureUsages,
    view_formats: &'static [TextureFormat],
) -> Texture {
    device.create_texture(&TextureDescriptor {
        label: Some(label),
        size: extent(size),
        mip_level_count: 1,
        sample_count: 1,
        dimension: TextureDimension::D2,
        format,
        usage,
        view_formats,
    })
}

/// Bytes of one `vec4<f32>` uniform.
pub const VEC4_BYTES: u64 = 16;

/// A uniform buffer holding one `vec4<f32>`, written with [`vec4_bytes`].
pub fn vec4_uniform(device: &RenderDevice, label: &'static str) -> Buffer {
    device.create_buffer(&BufferDescriptor {
        label: Some(label),
        size: VEC4_BYTES,
        usage: BufferUsages::UNIFORM | BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// A `vec4<f32>` as the GPU reads it.
pub fn vec4_bytes(v: Vec4) -> [u8; VEC4_BYTES as usize] {
    let mut out = [0; VEC4_BYTES as usize];
    for (chunk, f) in out.chunks_exact_mut(4).zip(v.to_array()) {
        chunk.copy_from_slice(&f.to_le_bytes());
    }
    out
}

/// Begins a render pass into `target` alone: cleared to black when `clear`, else loaded
/// (for passes that write every pixel, a clear would be one more pass over them).
pub fn begin_pass<'a>(
    ctx: &'a mut RenderContext,
    label: &'static str,
    target: &TextureView,
    clear: bool,
) -> TrackedRenderPass<'a> {
    ctx.begin_tracked_render_pass(RenderPassDescriptor {
        label: Some(label),
        color_attachments: &[Some(RenderPassColorAttachment {
            view: target,
            depth_slice: None,
            resolve_target: None,
            ops: Operations {
                load: if clear {
                    LoadOp::Clear(LinearRgba::BLACK.into())
                } else {
                    LoadOp::Load
                },
                store: StoreOp::Store,
            },
        })],
        depth_stencil_attachment: None,
        timestamp_writes: None,
        occlusion_query_set: None,
        multiview_mask: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec4_bytes_are_little_endian_floats_in_order() {
        let bytes = vec4_bytes(Vec4::new(1.0, 0.0, -2.0, 0.5));
        assert_eq!(&bytes[0..4], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[8..12], &(-2.0f32).to_le_bytes());
        assert_eq!(&bytes[12..16], &0.5f32.to_le_bytes());
    }
}
