/*{
  "description": "Blur: a 5x5 box of filtered samples spread over the radius",
  "params": [
    { "name": "radius", "type": "float", "min": 0.0, "max": 16.0, "default": 3.0 }
  ]
}*/
// 25 bilinear taps; each tap already averages up to four texels, so the box stays smooth
// at radii up to ~2 pixels per tap spacing while costing half a 7x7 kernel.
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let step = params.radius / 2.0 / lucid.resolution;
    var sum = vec4(0.0);
    for (var j = -2; j <= 2; j++) {
        for (var i = -2; i <= 2; i++) {
            sum += input_color(uv + vec2(f32(i), f32(j)) * step);
        }
    }
    return sum / 25.0;
}
