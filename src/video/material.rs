//! The Material2d that turns three planes of 4:2:0 video into RGB (`shaders/yuv_to_rgb.wgsl`).

use bevy::asset::uuid_handle;
use bevy::prelude::*;
use bevy::render::render_resource::AsBindGroup;
use bevy::shader::ShaderRef;
use bevy::sprite_render::Material2d;

use crate::decode::ColorMatrix;

/// The shader is compiled into the binary so Lucid runs from any working directory.
pub const YUV_SHADER: Handle<Shader> = uuid_handle!("6d1f6f3e-2a43-4c84-9a55-3b8f7f1c2e01");

/// Registers the embedded shader under [`YUV_SHADER`].
pub fn register_shader(app: &mut App) {
    let shader = Shader::from_wgsl(
        include_str!("../../shaders/yuv_to_rgb.wgsl"),
        "shaders/yuv_to_rgb.wgsl",
    );
    app.world_mut()
        .resource_mut::<Assets<Shader>>()
        .insert(&YUV_SHADER, shader)
        .expect("inserting an embedded shader");
}

/// Samples the Y, Cb and Cr planes and converts with the frame's matrix and range.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct YuvMaterial {
    /// Luma plane (R8).
    #[texture(0)]
    #[sampler(1)]
    pub y: Handle<Image>,
    /// Cb plane (R8, half size).
    #[texture(2)]
    #[sampler(3)]
    pub u: Handle<Image>,
    /// Cr plane (R8, half size).
    #[texture(4)]
    #[sampler(5)]
    pub v: Handle<Image>,
    /// x: 0 = BT.601, 1 = BT.709; y: 1 = full range.
    #[uniform(6)]
    pub params: Vec4,
}

impl YuvMaterial {
    /// The uniform for a frame's colour description.
    pub fn params_for(matrix: ColorMatrix, full_range: bool) -> Vec4 {
        let m = match matrix {
            ColorMatrix::Bt601 => 0.0,
            ColorMatrix::Bt709 => 1.0,
        };
        Vec4::new(m, if full_range { 1.0 } else { 0.0 }, 0.0, 0.0)
    }
}

impl Material2d for YuvMaterial {
    fn fragment_shader() -> ShaderRef {
        ShaderRef::Handle(YUV_SHADER)
    }
}
