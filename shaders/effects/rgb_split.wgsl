/*{
  "description": "RGB split / chromatic aberration: red and blue pulled apart",
  "params": [
    { "name": "amount", "type": "float", "min": 0.0, "max": 0.05, "default": 0.01 },
    { "name": "angle", "type": "float", "min": 0.0, "max": 360.0, "default": 0.0 }
  ]
}*/
// `amount` is a fraction of the picture; red moves one way along `angle`, blue the other.
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let a = radians(params.angle);
    let d = params.amount * vec2(cos(a), sin(a));
    let centre = input_color(uv);
    return vec4(input_color(uv + d).r, centre.g, input_color(uv - d).b, centre.a);
}
