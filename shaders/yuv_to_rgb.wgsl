// Draws the video into the canvas: one fullscreen pass, letterboxed by the pass's viewport.
// `fragment` converts a 4:2:0 frame, uploaded as three single-channel textures (Y, Cb, Cr),
// to RGB; `fragment_rgba` draws an RGB source's RGBA texture.
//
// params.x: 0 = BT.601, 1 = BT.709 matrix.  params.y: 1 = full range, 0 = limited (16-235).
//
// The canvas is an sRGB texture, but this pass writes it through a plain `Rgba8Unorm` view:
// video samples are already gamma-encoded, so the video's own values are stored as they are,
// with no decode to linear here and no encode on store (both cost a `pow` a channel, which
// a software rasterizer pays per pixel). Effects read the canvas through its sRGB view.

#import bevy_core_pipeline::fullscreen_vertex_shader::FullscreenVertexOutput

@group(0) @binding(0) var y_plane: texture_2d<f32>;
@group(0) @binding(1) var u_plane: texture_2d<f32>;
@group(0) @binding(2) var v_plane: texture_2d<f32>;
@group(0) @binding(3) var plane_sampler: sampler;
@group(0) @binding(4) var<uniform> params: vec4<f32>;

@fragment
fn fragment(in: FullscreenVertexOutput) -> @location(0) vec4<f32> {
    var y = textureSample(y_plane, plane_sampler, in.uv).r;
    var cb = textureSample(u_plane, plane_sampler, in.uv).r - 128.0 / 255.0;
    var cr = textureSample(v_plane, plane_sampler, in.uv).r - 128.0 / 255.0;
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
    return vec4(clamp(rgb, vec3(0.0), vec3(1.0)), 1.0);
}

// RGB sources (PNG and JPEG stills, RGB video) are uploaded as one RGBA texture, bound in
// the luma slot, with their gamma-encoded values as they are: no trip through Y'CbCr.
// Alone on the canvas, a transparent picture shows black behind it (over black, in the
// encoded values, as browsers composite).
@fragment
fn fragment_rgba(in: FullscreenVertexOutput) -> @location(0) vec4<f32> {
    let c = textureSample(y_plane, plane_sampler, in.uv);
    return vec4(c.rgb * c.a, 1.0);
}
