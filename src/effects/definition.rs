//! One effect as a WGSL file: its header (name, parameters), the WGSL Lucid wraps around it,
//! and validation with naga, so a broken file is reported with line numbers before it ever
//! reaches the GPU.
//!
//! The file format (documented in the README): a block comment holding a JSON object must
//! open the file, ISF-style, and the file defines `fn effect(uv: vec2<f32>) -> vec4<f32>`.
//!
//! ```wgsl
//! /*{
//!   "description": "Tints the picture",
//!   "params": [
//!     { "name": "amount", "type": "float", "min": 0.0, "max": 1.0, "default": 0.5 },
//!     { "name": "tint", "type": "color", "default": [1.0, 0.6, 0.2, 1.0] }
//!   ]
//! }*/
//! fn effect(uv: vec2<f32>) -> vec4<f32> {
//!     let c = input_color(uv);
//!     return vec4(mix(c.rgb, c.rgb * params.tint.rgb, params.amount), 1.0);
//! }
//! ```
//!
//! Lucid appends its prelude after the user's text (WGSL declarations may come in any
//! order), so line numbers in errors are the file's own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Most parameters an effect may declare (the parameter block is 16 bytes each).
pub const MAX_PARAMS: usize = 16;

/// Bytes of the parameter uniform block every effect gets (fixed so buffers are reused).
pub const PARAMS_BYTES: usize = MAX_PARAMS * 16;

/// Bytes of the globals uniform block (`lucid`: resolution, time, frame, mix).
pub const GLOBALS_BYTES: usize = 32;

/// Why an effect file could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EffectError {
    /// The JSON header is missing or wrong.
    #[error("{path}: header: {reason}")]
    Header {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The WGSL does not compile. `short` is one line (`file:line:col: message`), `full` is
    /// naga's rendering with the source lines.
    #[error("{short}")]
    Compile {
        /// `file:line:col: message`.
        short: String,
        /// Multi-line report with the offending source lines.
        full: String,
    },
    /// The file could not be read.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
}

impl EffectError {
    /// The longest form of the error, for the overlay.
    pub fn details(&self) -> String {
        match self {
            EffectError::Compile { full, .. } => full.clone(),
            other => other.to_string(),
        }
    }
}

/// The kind of a parameter, with its range where it has one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamKind {
    /// A number in `min..=max` (WGSL `f32`).
    Float {
        /// Lowest value.
        min: f32,
        /// Highest value.
        max: f32,
    },
    /// RGBA, each 0..1 (WGSL `vec4<f32>`).
    Color,
    /// On or off (WGSL `u32`, 0 or 1).
    Bool,
    /// A position, usually 0..1 in texture coordinates (WGSL `vec2<f32>`).
    Point,
}

/// A parameter value. Its shape says its kind, which keeps presets short and readable.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    /// For [`ParamKind::Bool`].
    Bool(bool),
    /// For [`ParamKind::Float`].
    Float(f32),
    /// For [`ParamKind::Point`].
    Point([f32; 2]),
    /// For [`ParamKind::Color`].
    Color([f32; 4]),
}

impl ParamValue {
    /// Whether this value fits a parameter of `kind`.
    pub fn fits(&self, kind: ParamKind) -> bool {
        matches!(
            (self, kind),
            (ParamValue::Bool(_), ParamKind::Bool)
                | (ParamValue::Float(_), ParamKind::Float { .. })
                | (ParamValue::Point(_), ParamKind::Point)
                | (ParamValue::Color(_), ParamKind::Color)
        )
    }
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDef {
    /// Name, a WGSL identifier (`params.<name>` in the shader).
    pub name: String,
    /// Kind and range.
    pub kind: ParamKind,
    /// Value when nothing sets it.
    pub default: ParamValue,
}

impl ParamDef {
    /// Parses a value given as text on the command line: `0.5`, `true`, `#ff8800`,
    /// `1/0.5/0.2[/1]` (colour), `0.3/0.7` (point).
    pub fn parse_value(&self, text: &str) -> Result<ParamValue, String> {
        let text = text.trim();
        let floats = |n: usize| -> Result<Vec<f32>, String> {
            let v: Vec<f32> = text
                .split('/')
                .map(|p| p.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("'{text}' is not {n} numbers separated by '/'"))?;
            if v.len() != n && !(n == 4 && v.len() == 3) {
                return Err(format!("'{text}' has {} numbers, {n} expected", v.len()));
            }
            Ok(v)
        };
        let value = match self.kind {
            ParamKind::Float { .. } => ParamValue::Float(
                text.parse()
                    .map_err(|_| format!("'{text}' is not a number"))?,
            ),
            ParamKind::Bool => ParamValue::Bool(match text {
                "true" | "1" | "on" | "yes" => true,
                "false" | "0" | "off" | "no" => false,
                _ => return Err(format!("'{text}' is not true or false")),
            }),
            ParamKind::Point => {
                let v = floats(2)?;
                ParamValue::Point([v[0], v[1]])
            }
            ParamKind::Color => {
                if let Some(hex) = text.strip_prefix('#') {
                    parse_hex_color(hex).ok_or_else(|| format!("'{text}' is not #rrggbb[aa]"))?
                } else {
                    let v = floats(4)?;
                    ParamValue::Color([v[0], v[1], v[2], v.get(3).copied().unwrap_or(1.0)])
                }
            }
        };
        self.check(value)?;
        Ok(value)
    }

    /// Checks kind and range.
    pub fn check(&self, value: ParamValue) -> Result<(), String> {
        if !value.fits(self.kind) {
            return Err(format!("{value:?} is not a {}", kind_name(self.kind)));
        }
        if let (ParamValue::Float(v), ParamKind::Float { min, max }) = (value, self.kind)
            && !(min..=max).contains(&v)
        {
            return Err(format!("{v} is outside {min}..{max}"));
        }
        Ok(())
    }
}

fn parse_hex_color(hex: &str) -> Option<ParamValue> {
    if !(hex.len() == 6 || hex.len() == 8) || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    let a = if hex.len() == 8 { byte(6)? } else { 255 };
    Some(ParamValue::Color([
        byte(0)? as f32 / 255.0,
        byte(2)? as f32 / 255.0,
        byte(4)? as f32 / 255.0,
        a as f32 / 255.0,
    ]))
}

fn kind_name(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Float { .. } => "float",
        ParamKind::Color => "color",
        ParamKind::Bool => "bool",
        ParamKind::Point => "point2d",
    }
}

/// The header's type name, with the range for floats (`float -1..1`).
impl std::fmt::Display for ParamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamKind::Float { min, max } => write!(f, "float {min}..{max}"),
            other => f.write_str(kind_name(*other)),
        }
    }
}

/// The command-line form [`ParamDef::parse_value`] reads back (`0.5`, `true`, `x/y`,
/// `r/g/b/a`).
impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamValue::Float(v) => write!(f, "{v}"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Point([x, y]) => write!(f, "{x}/{y}"),
            ParamValue::Color([r, g, b, a]) => write!(f, "{r}/{g}/{b}/{a}"),
        }
    }
}

/// A parsed, validated effect: what the chain, the UI and the renderer need.
#[derive(Debug, Clone)]
pub struct EffectDef {
    /// Name used on the command line, in presets and in the UI.
    pub name: String,
    /// One line for the UI.
    pub description: String,
    /// Declared parameters, in declaration order (also their order in the uniform block).
    pub params: Vec<ParamDef>,
    /// Where it came from (`builtin:<name>` or the file path).
    pub origin: String,
    /// The file, for user effects.
    pub path: Option<PathBuf>,
    /// True when the shader reads the previous output frame (feedback).
    pub uses_previous: bool,
    /// The complete WGSL: the user's text, then Lucid's prelude.
    pub wgsl: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    params: Vec<HeaderParam>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderParam {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    min: Option<f32>,
    max: Option<f32>,
    default: Option<serde_json::Value>,
}

impl EffectDef {
    /// Parses the header, builds the full WGSL and validates it.
    /// `name` is used when the header names none (the file stem).
    pub fn parse(
        name: &str,
        origin: &str,
        path: Option<&Path>,
        text: &str,
    ) -> Result<Self, EffectError> {
        let header_err = |reason: String| EffectError::Header {
            path: origin.to_string(),
            reason,
        };
        let body = text.trim_start();
        let json = body
            .strip_prefix("/*")
            .and_then(|rest| rest.find("*/").map(|end| &rest[..end]))
            .ok_or_else(|| {
                header_err("the file must start with a /*{ ... }*/ JSON header".into())
            })?;
        let header: Header =
            serde_json::from_str(json.trim()).map_err(|e| header_err(e.to_string()))?;
        let name = header.name.unwrap_or_else(|| name.to_string());
        if !is_identifier(&name.replace('-', "_")) {
            return Err(header_err(format!("'{name}' is not a usable effect name")));
        }
        if header.params.len() > MAX_PARAMS {
            return Err(header_err(format!("at most {MAX_PARAMS} params")));
        }
        let mut params = Vec::new();
        for p in header.params {
            if !is_identifier(&p.name) || p.name.starts_with("lucid") || p.name.starts_with('_') {
                return Err(header_err(format!(
                    "'{}' is not a usable parameter name",
                    p.name
                )));
            }
            if params.iter().any(|q: &ParamDef| q.name == p.name) {
                return Err(header_err(format!("parameter '{}' declared twice", p.name)));
            }
            let kind = match p.kind.as_str() {
                "float" => {
                    let (min, max) = (p.min.unwrap_or(0.0), p.max.unwrap_or(1.0));
                    if min.partial_cmp(&max) != Some(std::cmp::Ordering::Less) {
                        return Err(header_err(format!("'{}': min must be below max", p.name)));
                    }
                    ParamKind::Float { min, max }
                }
                "color" => ParamKind::Color,
                "bool" => ParamKind::Bool,
                "point2d" | "point" => ParamKind::Point,
                other => {
                    return Err(header_err(format!(
                        "'{}': unknown type '{other}' (float, color, bool, point2d)",
                        p.name
                    )));
                }
            };
            let default = match p.default {
                None => match kind {
                    ParamKind::Float { min, .. } => ParamValue::Float(min),
                    ParamKind::Color => ParamValue::Color([1.0; 4]),
                    ParamKind::Bool => ParamValue::Bool(false),
                    ParamKind::Point => ParamValue::Point([0.5, 0.5]),
                },
                Some(mut v) => {
                    // A colour written with three numbers is opaque.
                    if let (ParamKind::Color, Some(a)) = (kind, v.as_array_mut())
                        && a.len() == 3
                    {
                        a.push(serde_json::json!(1.0));
                    }
                    serde_json::from_value(v)
                        .map_err(|e| header_err(format!("'{}': default: {e}", p.name)))?
                }
            };
            let def = ParamDef {
                name: p.name,
                kind,
                default,
            };
            def.check(default)
                .map_err(|e| header_err(format!("'{}': default {e}", def.name)))?;
            params.push(def);
        }
        let wgsl = compose(text, &params);
        validate(&wgsl, origin)?;
        Ok(EffectDef {
            name,
            description: header.description,
            params,
            origin: origin.to_string(),
            path: path.map(Path::to_path_buf),
            uses_previous: text.contains("previous_color"),
            wgsl,
        })
    }

    /// The declared parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&ParamDef> {
        self.params.iter().find(|p| p.name == name)
    }

    /// The parameter block for the GPU: 16 bytes per declared parameter, in order, with
    /// `value(name)` or the default. Always [`PARAMS_BYTES`] long.
    pub fn pack(&self, value: impl Fn(&str) -> Option<ParamValue>) -> Vec<u8> {
        let mut out = Vec::with_capacity(PARAMS_BYTES);
        for p in &self.params {
            let v = value(&p.name)
                .filter(|v| v.fits(p.kind))
                .unwrap_or(p.default);
            let words: [u32; 4] = match v {
                ParamValue::Float(f) => [f.to_bits(), 0, 0, 0],
                ParamValue::Bool(b) => [b as u32, 0, 0, 0],
                ParamValue::Point([x, y]) => [x.to_bits(), y.to_bits(), 0, 0],
                ParamValue::Color(c) => c.map(f32::to_bits),
            };
            for w in words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        out.resize(PARAMS_BYTES, 0);
        out
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

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
};

@group(0) @binding(0) var lucid_input: texture_2d<f32>;
@group(0) @binding(1) var lucid_sampler: sampler;
@group(0) @binding(2) var<uniform> lucid: LucidGlobals;
@group(0) @binding(3) var<uniform> params: LucidParams;
@group(0) @binding(4) var lucid_previous: texture_2d<f32>;
// The same input without the sRGB transfer: encoded values, for whole texels.
@group(0) @binding(5) var lucid_input_encoded: texture_2d<f32>;

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
fn compose(user: &str, params: &[ParamDef]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaders_declaring_megabytes_of_memory_are_refused() {
        let huge = "/*{ \"params\": [] }*/\n\
            var<private> trail: array<vec4<f32>, 100000>;\n\
            fn effect(uv: vec2<f32>) -> vec4<f32> {\n\
                trail[0] = input_color(uv);\n\
                return trail[0];\n\
            }\n";
        let err = EffectDef::parse("huge", "huge.wgsl", None, huge).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("private/workgroup memory") && text.contains("`trail`"),
            "{text}"
        );
        let local = huge
            .replace("var<private> trail: array<vec4<f32>, 100000>;\n", "")
            .replace(
                "trail[0] = ",
                "var trail: array<vec4<f32>, 100000>;\n    trail[0] = ",
            );
        assert!(EffectDef::parse("huge", "huge.wgsl", None, &local).is_err());
        // What an effect reasonably keeps is fine.
        let small = huge.replace("100000", "64");
        assert!(EffectDef::parse("small", "small.wgsl", None, &small).is_ok());
    }

    const TINT: &str = r#"/*{
  "description": "test",
  "params": [
    { "name": "amount", "type": "float", "min": 0.0, "max": 2.0, "default": 0.5 },
    { "name": "tint", "type": "color", "default": [1.0, 0.5, 0.25] },
    { "name": "on", "type": "bool", "default": true },
    { "name": "center", "type": "point2d" }
  ]
}*/
fn effect(uv: vec2<f32>) -> vec4<f32> {
    let c = input_color(uv);
    if params.on == 0u { return c; }
    return vec4(c.rgb * params.tint.rgb * params.amount + vec3(params.center, 0.0), 1.0);
}
"#;

    #[test]
    fn header_params_and_packing() {
        let def = EffectDef::parse("tint_test", "tint.wgsl", None, TINT).expect("valid");
        assert_eq!(def.name, "tint_test");
        assert_eq!(def.params.len(), 4);
        assert_eq!(
            def.params[1].default,
            ParamValue::Color([1.0, 0.5, 0.25, 1.0])
        );
        let bytes = def.pack(|n| (n == "amount").then_some(ParamValue::Float(1.5)));
        assert_eq!(bytes.len(), PARAMS_BYTES);
        assert_eq!(f32::from_le_bytes(bytes[0..4].try_into().unwrap()), 1.5);
        assert_eq!(f32::from_le_bytes(bytes[20..24].try_into().unwrap()), 0.5);
        assert_eq!(u32::from_le_bytes(bytes[32..36].try_into().unwrap()), 1);
        assert_eq!(f32::from_le_bytes(bytes[48..52].try_into().unwrap()), 0.5);
    }

    #[test]
    fn compile_errors_carry_the_files_line_numbers() {
        let broken = TINT.replace("let c = input_color(uv);", "let c = input_color(uv)");
        let err = EffectDef::parse("t", "fx.wgsl", None, &broken).unwrap_err();
        let EffectError::Compile { short, full } = &err else {
            panic!("{err:?}")
        };
        // The semicolon missing on line 11 is reported where the next statement starts.
        assert!(short.starts_with("fx.wgsl:12:5:"), "{short}");
        assert!(full.contains("fx.wgsl:12:5"), "{full}");
        let undefined = TINT.replace("params.amount", "params.nope");
        let err = EffectDef::parse("t", "fx.wgsl", None, &undefined).unwrap_err();
        assert!(err.to_string().starts_with("fx.wgsl:13:"), "{err}");
    }

    fn readme_example() -> &'static str {
        let readme = include_str!("../../README.md");
        let start = readme.find("```wgsl\n").expect("a wgsl example") + 8;
        &readme[start..start + readme[start..].find("```").unwrap()]
    }

    #[test]
    fn the_readme_example_compiles_and_its_error_is_the_one_quoted() {
        let example = readme_example();
        let def = EffectDef::parse("x", "posterize.wgsl", None, example).expect("valid");
        assert_eq!(def.name, "posterize");
        assert_eq!(def.params.len(), 4);
        let typo = example.replacen("params.levels)", "params.levls)", 1);
        let err = EffectDef::parse("x", "posterize.wgsl", None, &typo).unwrap_err();
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&format!("({err})")),
            "README should quote: {err}"
        );
    }

    #[test]
    fn bad_headers_are_explained() {
        for (text, want) in [
            (
                "fn effect(uv: vec2<f32>) -> vec4<f32> { return vec4(1.0); }",
                "must start",
            ),
            (
                "/*{ \"params\": [{\"name\": \"a\", \"type\": \"matrix\"}] }*/",
                "unknown type",
            ),
            (
                "/*{ \"params\": [{\"name\": \"a\", \"type\": \"float\", \"default\": 5}] }*/",
                "outside",
            ),
            ("/*{ \"oops\": 1 }*/", "unknown field"),
        ] {
            let err = EffectDef::parse("x", "x.wgsl", None, text)
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn command_line_values() {
        let def = EffectDef::parse("t", "t.wgsl", None, TINT).unwrap();
        let p = |n: &str, v: &str| def.param(n).unwrap().parse_value(v);
        assert_eq!(p("amount", "1.25"), Ok(ParamValue::Float(1.25)));
        assert!(p("amount", "3").is_err());
        assert_eq!(p("on", "off"), Ok(ParamValue::Bool(false)));
        assert_eq!(
            p("center", "0.25/0.75"),
            Ok(ParamValue::Point([0.25, 0.75]))
        );
        assert_eq!(
            p("tint", "#ff0080"),
            Ok(ParamValue::Color([1.0, 0.0, 128.0 / 255.0, 1.0]))
        );
        assert_eq!(
            p("tint", "1/0/0"),
            Ok(ParamValue::Color([1.0, 0.0, 0.0, 1.0]))
        );
        assert!(p("tint", "red").is_err());
        // What --list-effects prints is what --effect reads.
        for param in &def.params {
            let shown = param.default.to_string();
            assert_eq!(param.parse_value(&shown), Ok(param.default), "{shown}");
        }
    }
}
