/*{
  "description": "Blur: a 7x7 box of samples spread over the radius",
  "params": [
    { "name": "radius", "type": "float", "min": 0.0, "max": 16.0, "default": 3.0 }
  ]
}*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let step = params.radius / 3.0 / lucid.resolution;
    var sum = vec3(0.0);
    for (var j = -3; j <= 3; j++) {
        for (var i = -3; i <= 3; i++) {
            sum += input_color(uv + vec2(f32(i), f32(j)) * step).rgb;
        }
    }
    return vec4(sum / 49.0, 1.0);
}
