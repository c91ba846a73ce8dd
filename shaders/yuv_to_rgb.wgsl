// Converts a 4:2:0 video frame, uploaded as three single-channel textures (Y, Cb, Cr),
// to RGB on a Material2d quad.
//
// params.x: 0 = BT.601, 1 = BT.709 matrix.  params.y: 1 = full range, 0 = limited (16-235).
//
// The target is an sRGB texture, which encodes what the shader writes. Video samples are
// already gamma-encoded, so we decode them to linear here and the store writes the video's
// own values back: the recorded and displayed pixels equal the source's RGB.

#import bevy_sprite::mesh2d_vertex_output::VertexOutput

@group(#{MATERIAL_BIND_GROUP}) @binding(0) var y_plane: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(1) var y_sampler: sampler;
@group(#{MATERIAL_BIND_GROUP}) @binding(2) var u_plane: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(3) var u_sampler: sampler;
@group(#{MATERIAL_BIND_GROUP}) @binding(4) var v_plane: texture_2d<f32>;
@group(#{MATERIAL_BIND_GROUP}) @binding(5) var v_sampler: sampler;
@group(#{MATERIAL_BIND_GROUP}) @binding(6) var<uniform> params: vec4<f32>;

fn srgb_to_linear(c: vec3<f32>) -> vec3<f32> {
    let lo = c / 12.92;
    let hi = pow((c + vec3(0.055)) / 1.055, vec3(2.4));
    return select(hi, lo, c <= vec3(0.04045));
}

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
    var y = textureSample(y_plane, y_sampler, in.uv).r;
    var cb = textureSample(u_plane, u_sampler, in.uv).r - 128.0 / 255.0;
    var cr = textureSample(v_plane, v_sampler, in.uv).r - 128.0 / 255.0;
    if params.y < 0.5 {
        y = (y - 16.0 / 255.0) * (255.0 / 219.0);
        cb = cb * (255.0 / 224.0);
        cr = cr * (255.0 / 224.0);
    }
    var rgb: vec3<f32>;
    if params.x < 0.5 {
        rgb = vec3(y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb);
    } else {
        rgb = vec3(y + 1.5748 * cr, y - 0.187324 * cb - 0.468124 * cr, y + 1.8556 * cb);
    }
    return vec4(srgb_to_linear(clamp(rgb, vec3(0.0), vec3(1.0))), 1.0);
}
