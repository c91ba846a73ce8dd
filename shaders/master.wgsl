/*{
  "name": "lucid_master",
  "description": "Lucid's own last pass: blackout and fades (not listed as an effect)",
  "params": [
    { "name": "level", "type": "float", "min": 0.0, "max": 1.0, "default": 1.0 }
  ]
}*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    return vec4(input_color(uv).rgb * params.level, 1.0);
}
