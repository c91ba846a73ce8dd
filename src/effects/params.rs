//! An effect's parameters: their kinds and ranges, values, and how the header declares them.

use serde::{Deserialize, Serialize};

/// A parameter as an effect's JSON header declares it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HeaderParam {
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) min: Option<f32>,
    pub(super) max: Option<f32>,
    pub(super) default: Option<serde_json::Value>,
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
