//! From an effect to the shader that runs: the `lucid` globals, the prelude every effect
//! is composed into, and validation with naga (errors with line numbers, memory bounds).

use std::fmt::Write as _;

use super::definition::{EffectError, GLOBALS_BYTES, MAX_PARAMS};
use super::params::{ParamDef, ParamKind};

/// The `lucid` globals block of one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Globals {
    /// The canvas in pixels.
    pub resolution: [f32; 2],
    /// Seconds (see [`super::EffectClock`]).
    pub time: f32,
    /// Presented frame number.
    pub frame: u32,
    /// The effect's mix, 0..1.
    pub mix: f32,
    /// The show's tempo.
    pub bpm: f32,
    /// Beats since the tempo's anchor, with the fraction: `fract(beat)` is the phase.
    pub beat: f32,
    /// A compositor layer's chain (its result keeps the effect's alpha), not the master's.
    pub layer: bool,
    /// The sound's bass, low mids, high mids and treble, 0..1.
    pub audio_bands: [f32; 4],
    /// The sound's level, 0..1 (-60 dBFS to full scale).
    pub audio_level: f32,
    /// 1 at a hit, falling to 0 over 150 ms.
    pub audio_onset: f32,
    /// `time`'s step since the last frame (ISF's `TIMEDELTA`).
    pub time_delta: f32,
    /// Local year, month, day and seconds since midnight (ISF's `DATE`).
    pub date: [f32; 4],
}

/// The globals block as the shader sees it.
pub fn pack_globals(globals: &Globals) -> [u8; GLOBALS_BYTES] {
    let words = [
        globals.resolution[0].to_bits(),
        globals.resolution[1].to_bits(),
        globals.time.to_bits(),
        globals.frame,
        globals.mix.to_bits(),
        globals.bpm.to_bits(),
        globals.beat.to_bits(),
        if globals.layer { 1.0f32 } else { 0.0 }.to_bits(),
        globals.audio_bands[0].to_bits(),
        globals.audio_bands[1].to_bits(),
        globals.audio_bands[2].to_bits(),
        globals.audio_bands[3].to_bits(),
        globals.audio_level.to_bits(),
        globals.audio_onset.to_bits(),
        globals.time_delta.to_bits(),
        0,
        globals.date[0].to_bits(),
        globals.date[1].to_bits(),
        globals.date[2].to_bits(),
        globals.date[3].to_bits(),
    ];
    let mut out = [0u8; GLOBALS_BYTES];
    for (i, w) in words.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// Lucid's prelude: bindings, the parameter struct, helpers and the entry point that mixes
/// the effect with its input. Effects work on sRGB-encoded colour (what the eye and most
/// VJ shaders expect). Filtered samples come through the textures' sRGB view (interpolated
/// in linear light) and are encoded here; whole texels and the result go through the plain
/// view, already encoded.
const PRELUDE: &str = r#"
// ---- Lucid prelude (appended by Lucid; the lines above are the effect's own) ----
struct LucidGlobals {
    resolution: vec2<f32>,
    time: f32,
    frame: u32,
    mix: f32,
    bpm: f32,
    beat: f32,
    // 1 for a compositor layer's chain: the result keeps the effect's alpha (mixed with
    // the input's), so a logo keeps its shape and a keying effect can cut one. The master
    // chain's result stays opaque.
    layer: f32,
    // The show's sound at this frame (all 0 without sound): bass, low mids, high mids and
    // treble, 0..1 each; its level, 0..1 over -60..0 dBFS; and a pulse, 1 at a hit,
    // falling to 0 over 150 ms.
    audio_bands: vec4<f32>,
    audio_level: f32,
    audio_onset: f32,
    time_delta: f32,
    _lucid_pad: f32,
    // Local year, month, day and seconds since midnight.
    date: vec4<f32>,
};

@group(0) @binding(0) var lucid_input: texture_2d<f32>;
@group(0) @binding(1) var lucid_sampler: sampler;
@group(0) @binding(2) var<uniform> lucid: LucidGlobals;
@group(0) @binding(3) var<uniform> params: LucidParams;
@group(0) @binding(4) var lucid_previous: texture_2d<f32>;
// The same input without the sRGB transfer: encoded values, for whole texels.
@group(0) @binding(5) var lucid_input_encoded: texture_2d<f32>;
// The sound's spectrum: one row of log-spaced bins over 20 Hz-20 kHz.
@group(0) @binding(6) var lucid_spectrum: texture_2d<f32>;

fn lucid_encode(c: vec3<f32>) -> vec3<f32> {
    let lo = c * 12.92;
    let hi = 1.055 * pow(max(c, vec3(0.0031308)), vec3(1.0 / 2.4)) - 0.055;
    return select(hi, lo, c <= vec3(0.0031308));
}

/// The input at `uv` (0..1, top left origin), filtered, clamped at the edges.
fn input_color(uv: vec2<f32>) -> vec4<f32> {
    let c = textureSampleLevel(lucid_input, lucid_sampler, uv, 0.0);
    return vec4(lucid_encode(c.rgb), c.a);
}

/// The input texel at integer pixel `p`, clamped to the picture.
fn input_texel(p: vec2<i32>) -> vec4<f32> {
    let size = vec2<i32>(textureDimensions(lucid_input_encoded));
    return textureLoad(lucid_input_encoded, clamp(p, vec2(0), size - 1), 0);
}

/// The previous output frame at `uv` (black before the first).
fn previous_color(uv: vec2<f32>) -> vec4<f32> {
    let c = textureSampleLevel(lucid_previous, lucid_sampler, uv, 0.0);
    return vec4(lucid_encode(c.rgb), c.a);
}

/// The sound's spectrum at `f` (0 = 20 Hz .. 1 = 20 kHz, log-spaced), 0..1, filtered
/// between bins; 0 without sound.
fn audio_spectrum(f: f32) -> f32 {
    return textureSampleLevel(lucid_spectrum, lucid_sampler, vec2(clamp(f, 0.0, 1.0), 0.5), 0.0).r;
}

/// Integer hash (PCG), the same on every GPU and on the CPU.
fn lucid_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

@fragment
fn lucid_fragment(@builtin(position) position: vec4<f32>, @location(0) uv: vec2<f32>) -> @location(0) vec4<f32> {
    let src = input_color(uv);
    let fx = clamp(effect(uv), vec4(0.0), vec4(1.0));
    let amount = clamp(lucid.mix, 0.0, 1.0);
    let out = mix(src.rgb, fx.rgb, amount);
    let alpha = select(1.0, mix(src.a, fx.a, amount), lucid.layer > 0.5);
    // Stored through the target's plain view: the encoded values as they are (decoding
    // here for the sRGB store to encode again would cost two transcendentals a channel).
    return vec4(out, alpha);
}
"#;

/// The user's text followed by the prelude and the generated parameter struct.
pub(super) fn compose(user: &str, params: &[ParamDef]) -> String {
    let mut s = String::with_capacity(user.len() + PRELUDE.len() + 512);
    s.push_str(user);
    if !user.ends_with('\n') {
        s.push('\n');
    }
    s.push_str(PRELUDE);
    s.push_str("\nstruct LucidParams {\n");
    for (i, p) in params.iter().enumerate() {
        // Each parameter takes 16 bytes so the layout is the same on every backend.
        let fields = match p.kind {
            ParamKind::Float { .. } => format!(
                "    {}: f32,\n    _lucid_p{i}a: f32,\n    _lucid_p{i}b: f32,\n    _lucid_p{i}c: f32,\n",
                p.name
            ),
            ParamKind::Bool => format!(
                "    {}: u32,\n    _lucid_p{i}a: f32,\n    _lucid_p{i}b: f32,\n    _lucid_p{i}c: f32,\n",
                p.name
            ),
            ParamKind::Point => {
                format!("    {}: vec2<f32>,\n    _lucid_p{i}a: vec2<f32>,\n", p.name)
            }
            ParamKind::Color => format!("    {}: vec4<f32>,\n", p.name),
        };
        s.push_str(&fields);
    }
    for i in params.len()..MAX_PARAMS {
        let _ = writeln!(s, "    _lucid_unused{i}: vec4<f32>,");
    }
    s.push_str("};\n");
    s
}

/// Parses and validates WGSL with naga, as the GPU driver would, and renders an error with
/// the file's own line numbers.
pub fn validate(wgsl: &str, origin: &str) -> Result<(), EffectError> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| {
        let at = e
            .location(wgsl)
            .map(|l| format!(":{}:{}", l.line_number, l.line_position))
            .unwrap_or_default();
        EffectError::Compile {
            short: format!("{origin}{at}: {}", e.message()),
            full: e.emit_to_string_with_path(wgsl, origin),
        }
    })?;
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    );
    validator.validate(&module).map_err(|e| {
        let at = e
            .location(wgsl)
            .map(|l| format!(":{}:{}", l.line_number, l.line_position))
            .unwrap_or_default();
        let mut message = e.as_inner().to_string();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e.as_inner());
        while let Some(inner) = source {
            let _ = write!(message, ": {inner}");
            source = inner.source();
        }
        EffectError::Compile {
            short: format!("{origin}{at}: {message}"),
            full: e.emit_to_string_with_path(wgsl, origin),
        }
    })?;
    check_memory(&module, origin)
}

/// Private and workgroup memory an effect may declare, globals and every function's local
/// variables together. The built-ins use a few hundred bytes; a shader that declares
/// megabytes per invocation stalls or crashes drivers instead of drawing a frame.
pub const MAX_SHADER_MEMORY: u64 = 64 << 10;

/// Refuses a validated module whose per-invocation memory is far beyond what an effect
/// needs, naming its largest variable.
fn check_memory(module: &naga::Module, origin: &str) -> Result<(), EffectError> {
    let gctx = module.to_ctx();
    let size = |ty: naga::Handle<naga::Type>| {
        u64::from(module.types[ty].inner.try_size(gctx).unwrap_or(u32::MAX))
    };
    let globals = module
        .global_variables
        .iter()
        .filter(|(_, g)| {
            matches!(
                g.space,
                naga::AddressSpace::Private | naga::AddressSpace::WorkGroup
            )
        })
        .map(|(_, g)| (g.name.clone(), size(g.ty)));
    let functions = module
        .functions
        .iter()
        .map(|(_, f)| f)
        .chain(module.entry_points.iter().map(|e| &e.function));
    let locals = functions.flat_map(|f| {
        f.local_variables
            .iter()
            .map(|(_, l)| (l.name.clone(), size(l.ty)))
    });
    let all: Vec<(Option<String>, u64)> = globals.chain(locals).collect();
    let total: u64 = all.iter().map(|(_, n)| n).sum();
    if total <= MAX_SHADER_MEMORY {
        return Ok(());
    }
    let (name, biggest) = all
        .iter()
        .max_by_key(|(_, n)| *n)
        .cloned()
        .unwrap_or_default();
    let short = format!(
        "{origin}: the shader declares {} KiB of private/workgroup memory (at most {} KiB; \
         `{}` alone is {} KiB)",
        total >> 10,
        MAX_SHADER_MEMORY >> 10,
        name.unwrap_or_else(|| "a variable".into()),
        biggest >> 10
    );
    Err(EffectError::Compile {
        full: short.clone(),
        short,
    })
}
