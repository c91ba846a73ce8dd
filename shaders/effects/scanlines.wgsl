/*{
  "description": "Scanlines and glitch: darkened rows, and horizontal bands that jump sideways",
  "params": [
    { "name": "intensity", "type": "float", "min": 0.0, "max": 1.0, "default": 0.35 },
    { "name": "period", "type": "float", "min": 1.0, "max": 16.0, "default": 3.0 },
    { "name": "glitch", "type": "float", "min": 0.0, "max": 1.0, "default": 0.0 },
    { "name": "band", "type": "float", "min": 2.0, "max": 64.0, "default": 12.0 }
  ]
}*/
// The glitch is an integer hash of (band, frame), so it is the same on every GPU and on
// the CPU, and the same input renders the same glitches.
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let p = vec2<i32>(floor(uv * lucid.resolution));
    let band = u32(p.y) / u32(max(1.0, floor(params.band)));
    let h = lucid_hash(band * 7919u + lucid.frame * 104729u);
    var x = p.x;
    if f32(h & 0xffffu) / 65535.0 < params.glitch {
        // Up to a tenth of the width either way.
        x = x + (i32((h >> 16u) & 0xffu) - 128) * i32(lucid.resolution.x) / 1280;
    }
    let input = input_texel(vec2(x, p.y));
    var c = input.rgb;
    let period = u32(max(1.0, floor(params.period)));
    if u32(p.y) % period == period - 1u {
        c = c * (1.0 - params.intensity);
    }
    return vec4(c, input.a);
}
