/*{
  "description": "Pixelate: square cells showing the pixel at their center",
  "params": [
    { "name": "size", "type": "float", "min": 1.0, "max": 64.0, "default": 8.0 }
  ]
}*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let s = max(1.0, floor(params.size));
    let p = floor(uv * lucid.resolution);
    let cell = floor(p / s) * s + floor(s / 2.0);
    return input_texel(vec2<i32>(cell));
}
