/*{
  "description": "Tint: the picture's luma in a colour, mixed over the original",
  "params": [
    { "name": "color", "type": "color", "default": [1.0, 0.6, 0.2, 1.0] },
    { "name": "amount", "type": "float", "min": 0.0, "max": 1.0, "default": 0.5 }
  ]
}*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let input = input_color(uv);
    let c = input.rgb;
    let luma = dot(c, vec3(0.2126, 0.7152, 0.0722));
    return vec4(mix(c, luma * params.color.rgb, params.amount), input.a);
}
