/*{
  "description": "Edge glow: Sobel edges of the luma, added in a colour",
  "params": [
    { "name": "strength", "type": "float", "min": 0.0, "max": 8.0, "default": 2.0 },
    { "name": "color", "type": "color", "default": [0.2, 1.0, 0.6, 1.0] }
  ]
}*/
fn luma_at(p: vec2<i32>) -> f32 {
    return dot(input_texel(p).rgb, vec3(0.2126, 0.7152, 0.0722));
}

fn effect(uv: vec2<f32>) -> vec4<f32> {
    let p = vec2<i32>(floor(uv * lucid.resolution));
    let tl = luma_at(p + vec2(-1, -1));
    let t = luma_at(p + vec2(0, -1));
    let tr = luma_at(p + vec2(1, -1));
    let l = luma_at(p + vec2(-1, 0));
    let r = luma_at(p + vec2(1, 0));
    let bl = luma_at(p + vec2(-1, 1));
    let b = luma_at(p + vec2(0, 1));
    let br = luma_at(p + vec2(1, 1));
    let gx = (tr + 2.0 * r + br) - (tl + 2.0 * l + bl);
    let gy = (bl + 2.0 * b + br) - (tl + 2.0 * t + tr);
    let edge = clamp(length(vec2(gx, gy)) * params.strength, 0.0, 1.0);
    let input = input_texel(p);
    return vec4(input.rgb + params.color.rgb * edge, input.a);
}
