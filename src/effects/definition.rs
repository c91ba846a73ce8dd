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

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::params::HeaderParam;
pub use super::params::{ParamDef, ParamKind, ParamValue};
pub(super) use super::shader::compose;
pub use super::shader::{Globals, MAX_SHADER_MEMORY, pack_globals, validate};

/// Most parameters an effect may declare (the parameter block is 16 bytes each; ISF files
/// with twenty-odd inputs exist).
pub const MAX_PARAMS: usize = 32;

/// Bytes of the parameter uniform block every effect gets (fixed so buffers are reused).
pub const PARAMS_BYTES: usize = MAX_PARAMS * 16;

/// Bytes of the globals uniform block (`lucid`: resolution, time, frame, mix, tempo,
/// layer, the sound's bands, level and onset pulse, the time step and the local date).
pub const GLOBALS_BYTES: usize = 80;

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
    /// An ISF generator: it draws without an input (a source: `isf:NAME`).
    pub generator: bool,
    /// An ISF transition (`startImage`, `endImage`, `progress`): the crossfader's
    /// (`--transition`), not a chain's.
    pub transition: bool,
    /// ISF `event` inputs: pulses, set back to false once a frame has drawn them.
    pub pulses: Vec<String>,
    /// A multi-pass ISF effect's passes (`wgsl` is then its last pass's).
    pub passes: Option<std::sync::Arc<super::passes::Passes>>,
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
            generator: false,
            transition: false,
            pulses: Vec::new(),
            passes: None,
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

/// A GLSL/WGSL identifier: a letter or `_`, then letters, digits and `_`.
pub(super) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
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
