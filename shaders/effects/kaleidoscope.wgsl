/*{
  "description": "Kaleidoscope: the picture folded into mirrored wedges around a center",
  "params": [
    { "name": "segments", "type": "float", "min": 2.0, "max": 16.0, "default": 6.0 },
    { "name": "rotation", "type": "float", "min": 0.0, "max": 360.0, "default": 0.0 },
    { "name": "center", "type": "point2d", "default": [0.5, 0.5] }
  ]
}*/
// Polar coordinates around `center` (aspect-corrected so wedges are not squashed); the
// angle is folded into the first half-wedge, so neighbouring wedges mirror each other.
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let aspect = vec2(lucid.resolution.x / lucid.resolution.y, 1.0);
    let p = (uv - params.center) * aspect;
    let r = length(p);
    let wedge = 6.2831855 / floor(params.segments);
    var a = atan2(p.y, p.x) + radians(params.rotation);
    a = a - wedge * floor(a / wedge);
    a = min(a, wedge - a);
    return input_color(params.center + r * vec2(cos(a), sin(a)) / aspect);
}
