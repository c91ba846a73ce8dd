// Converts the canvas to planar 4:2:0 for the encoders, so the GPU does the conversion and
// the read-back is 1.5 bytes a pixel instead of 4.
//
// The target is one R8 texture of width W and height H * 3 / 2: rows 0..H hold Y; the rows
// below hold Cb in their left half and Cr in their right half (W/2 x H/2 each). The output
// stage copies those rows into the encoder's planes.
//
// params.x: 0 = BT.601, 1 = BT.709 (what the outputs are tagged with); limited range. The
// canvas is read through its plain `Rgba8Unorm` view, so the values are the gamma-encoded
// ones the matrix expects.
// Chroma is the mean of each 2x2 block (centre siting, as YUV4MPEG2's C420jpeg says).

@group(0) @binding(0) var canvas: texture_2d<f32>;
@group(0) @binding(1) var mean_sampler: sampler;
@group(0) @binding(2) var<uniform> params: vec4<f32>;

// Luma weights (Kr, Kg, Kb) of the output's matrix.
fn weights() -> vec3<f32> {
    return select(vec3(0.299, 0.587, 0.114), vec3(0.2126, 0.7152, 0.0722), params.x > 0.5);
}

fn rgb(p: vec2<i32>) -> vec3<f32> {
    return textureLoad(canvas, p, 0).rgb;
}

@fragment
fn luma(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let c = rgb(vec2<i32>(pos.xy));
    let y = 16.0 + 219.0 * dot(c, weights());
    return vec4(y / 255.0, 0.0, 0.0, 1.0);
}

@fragment
fn chroma(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let size = vec2<i32>(textureDimensions(canvas));
    let half_width = size.x / 2;
    let p = vec2<i32>(pos.xy);
    let is_cr = p.x >= half_width;
    let q = vec2(select(p.x, p.x - half_width, is_cr), p.y - size.y) * 2;
    // Bilinear filtering at the corner the four pixels share is their mean: one fetch.
    let c = textureSampleLevel(canvas, mean_sampler, (vec2<f32>(q) + 1.0) / vec2<f32>(size), 0.0).rgb;
    // Cb = (B - Y) / (2 (1 - Kb)), Cr = (R - Y) / (2 (1 - Kr)).
    let k = weights();
    let luma = dot(c, k);
    let difference = select(c.b - luma, c.r - luma, is_cr);
    let scale = select(2.0 * (1.0 - k.b), 2.0 * (1.0 - k.r), is_cr);
    return vec4((128.0 + 224.0 * difference / scale) / 255.0, 0.0, 0.0, 1.0);
}
