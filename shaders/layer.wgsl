// One compositor layer over the canvas: the layer's picture (4:2:0 planes converted to RGB,
// or an RGBA texture with its alpha, or its own effect chain's result), placed by its fit
// rectangle, blended over the picture so far with a W3C "Compositing and Blending Level 1"
// mode on sRGB-encoded values (as browsers do), at the layer's opacity:
//     result = (1 - a) * backdrop + a * B(backdrop, source),   a = source alpha * opacity
// The reference these are tested against is `compositor::blend_channel` in Rust.
//
// The backdrop is read through the canvas's plain (encoded) view with textureLoad at the
// same pixel; the result is stored through the plain view too.

#import bevy_core_pipeline::fullscreen_vertex_shader::FullscreenVertexOutput

struct Layer {
    // x: 0 = BT.601, 1 = BT.709; y: 1 = full range; z: 1 = an RGBA picture in y_plane;
    // w: 1 = the layer's effects ran: y_plane holds their RGBA result (the `picture` pass
    // read the source as x..z say).
    video: vec4<f32>,
    // Where the picture goes in the canvas: x, y, width, height in pixels.
    rect: vec4<f32>,
    // x: opacity; y: blend mode (compositor::BlendMode::index).
    mix: vec4<f32>,
    // x, y: offset in pixels; z: scale; w: clockwise rotation in radians.
    transform: vec4<f32>,
}

@group(0) @binding(0) var backdrop: texture_2d<f32>;
@group(0) @binding(1) var y_plane: texture_2d<f32>;
@group(0) @binding(2) var u_plane: texture_2d<f32>;
@group(0) @binding(3) var v_plane: texture_2d<f32>;
@group(0) @binding(4) var plane_sampler: sampler;
@group(0) @binding(5) var<uniform> layer: Layer;

// The source picture: RGBA as it is, or 4:2:0 converted to RGB (opaque).
fn picture_color(uv: vec2<f32>) -> vec4<f32> {
    if layer.video.z > 0.5 {
        return textureSample(y_plane, plane_sampler, uv);
    }
    var y = textureSample(y_plane, plane_sampler, uv).r;
    var cb = textureSample(u_plane, plane_sampler, uv).r - 128.0 / 255.0;
    var cr = textureSample(v_plane, plane_sampler, uv).r - 128.0 / 255.0;
    if layer.video.y < 0.5 {
        y = (y - 16.0 / 255.0) * (255.0 / 219.0);
        cb = cb * (255.0 / 224.0);
        cr = cr * (255.0 / 224.0);
    }
    var rgb: vec3<f32>;
    if layer.video.x < 0.5 {
        rgb = vec3(y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb);
    } else {
        rgb = vec3(y + 1.5748 * cr, y - 0.187324 * cb - 0.468124 * cr, y + 1.8556 * cb);
    }
    return vec4(clamp(rgb, vec3(0.0), vec3(1.0)), 1.0);
}

// What is placed and blended: the effects' result, or the source picture.
fn layer_color(uv: vec2<f32>) -> vec4<f32> {
    if layer.video.w > 0.5 {
        return textureSample(y_plane, plane_sampler, uv);
    }
    return picture_color(uv);
}

// A layer with effects: its picture at its own size, with its alpha, for the effects to
// work on before it is placed (the blend pass then reads their result).
@fragment
fn picture(in: FullscreenVertexOutput) -> @location(0) vec4<f32> {
    return picture_color(in.uv);
}

fn hard_light(cb: vec3<f32>, cs: vec3<f32>) -> vec3<f32> {
    let multiply = cb * (2.0 * cs);
    let s = 2.0 * cs - 1.0;
    let screen = cb + s - cb * s;
    return select(screen, multiply, cs <= vec3(0.5));
}

fn color_dodge(cb: f32, cs: f32) -> f32 {
    if cb == 0.0 {
        return 0.0;
    }
    if cs >= 1.0 {
        return 1.0;
    }
    return min(1.0, cb / (1.0 - cs));
}

fn color_burn(cb: f32, cs: f32) -> f32 {
    if cb >= 1.0 {
        return 1.0;
    }
    if cs <= 0.0 {
        return 0.0;
    }
    return 1.0 - min(1.0, (1.0 - cb) / cs);
}

fn soft_light(cb: f32, cs: f32) -> f32 {
    if cs <= 0.5 {
        return cb - (1.0 - 2.0 * cs) * cb * (1.0 - cb);
    }
    var d: f32;
    if cb <= 0.25 {
        d = ((16.0 * cb - 12.0) * cb + 4.0) * cb;
    } else {
        d = sqrt(cb);
    }
    return cb + (2.0 * cs - 1.0) * (d - cb);
}

fn blend(mode: u32, cb: vec3<f32>, cs: vec3<f32>) -> vec3<f32> {
    switch mode {
        case 1u: { return cb * cs; }
        case 2u: { return cb + cs - cb * cs; }
        case 3u: { return hard_light(cs, cb); }
        case 4u: { return min(cb, cs); }
        case 5u: { return max(cb, cs); }
        case 6u: {
            return vec3(color_dodge(cb.r, cs.r), color_dodge(cb.g, cs.g), color_dodge(cb.b, cs.b));
        }
        case 7u: {
            return vec3(color_burn(cb.r, cs.r), color_burn(cb.g, cs.g), color_burn(cb.b, cs.b));
        }
        case 8u: { return hard_light(cb, cs); }
        case 9u: {
            return vec3(soft_light(cb.r, cs.r), soft_light(cb.g, cs.g), soft_light(cb.b, cs.b));
        }
        case 10u: { return abs(cb - cs); }
        case 11u: { return cb + cs - 2.0 * cb * cs; }
        case 12u: { return min(vec3(1.0), cb + cs); }
        default: { return cs; }
    }
}

@fragment
fn fragment(in: FullscreenVertexOutput) -> @location(0) vec4<f32> {
    let pixel = vec2<i32>(in.position.xy);
    let cb = textureLoad(backdrop, pixel, 0).rgb;
    // From the pixel back into the picture: undo the offset, the rotation about the
    // picture's centre and the scale, then the fit.
    let centre = layer.rect.xy + 0.5 * layer.rect.zw + layer.transform.xy;
    let p = in.position.xy - centre;
    let c = cos(layer.transform.w);
    let s = sin(layer.transform.w);
    let unrotated = vec2(c * p.x + s * p.y, -s * p.x + c * p.y) / layer.transform.z;
    let uv = unrotated / layer.rect.zw + vec2(0.5);
    // Sampled everywhere (sampling must stay in uniform control flow); outside the
    // picture's rectangle the layer is transparent.
    let inside = all(uv >= vec2(0.0)) && all(uv <= vec2(1.0));
    let source = layer_color(clamp(uv, vec2(0.0), vec2(1.0)));
    let a = select(0.0, clamp(source.a * layer.mix.x, 0.0, 1.0), inside);
    let b = clamp(blend(u32(layer.mix.y), cb, source.rgb), vec3(0.0), vec3(1.0));
    return vec4((1.0 - a) * cb + a * b, 1.0);
}
