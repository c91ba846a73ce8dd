/*{
  "description": "Mirror: the left half reflected onto the right, and/or the top onto the bottom",
  "params": [
    { "name": "horizontal", "type": "bool", "default": true },
    { "name": "vertical", "type": "bool", "default": false }
  ]
}*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    var m = uv;
    if params.horizontal != 0u && m.x > 0.5 {
        m.x = 1.0 - m.x;
    }
    if params.vertical != 0u && m.y > 0.5 {
        m.y = 1.0 - m.y;
    }
    return input_color(m);
}
