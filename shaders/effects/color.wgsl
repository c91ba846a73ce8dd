/*{
  "description": "Brightness, contrast, saturation and hue",
  "params": [
    { "name": "brightness", "type": "float", "min": -1.0, "max": 1.0, "default": 0.0 },
    { "name": "contrast", "type": "float", "min": 0.0, "max": 3.0, "default": 1.0 },
    { "name": "saturation", "type": "float", "min": 0.0, "max": 3.0, "default": 1.0 },
    { "name": "hue", "type": "float", "min": -180.0, "max": 180.0, "default": 0.0 }
  ]
}*/
// Brightness, then contrast around mid-grey, then saturation against Rec. 709 luma, then a
// hue rotation about the grey axis (Rodrigues' formula).
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let input = input_color(uv);
    var c = input.rgb + vec3(params.brightness);
    c = (c - vec3(0.5)) * params.contrast + vec3(0.5);
    let luma = dot(c, vec3(0.2126, 0.7152, 0.0722));
    c = mix(vec3(luma), c, params.saturation);
    let a = radians(params.hue);
    let k = vec3(0.57735026);
    c = c * cos(a) + cross(k, c) * sin(a) + k * dot(k, c) * (1.0 - cos(a));
    return vec4(c, input.a);
}
