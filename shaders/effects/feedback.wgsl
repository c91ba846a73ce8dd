/*{
  "description": "Feedback / trails: the previous output, decayed and optionally zoomed, kept where brighter",
  "params": [
    { "name": "decay", "type": "float", "min": 0.0, "max": 1.0, "default": 0.85 },
    { "name": "zoom", "type": "float", "min": 0.9, "max": 1.1, "default": 1.0 }
  ]
}*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let trail = previous_color((uv - vec2(0.5)) / params.zoom + vec2(0.5)).rgb * params.decay;
    let input = input_color(uv);
    return vec4(max(input.rgb, trail), input.a);
}
