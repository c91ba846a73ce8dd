//! ISF (the Interactive Shader Format of VDMX, Resolume Wire, Millumin and others) as Lucid
//! effects: a `.fs` file's JSON header becomes the effect's parameters, and its GLSL (with
//! the `.vs` beside it, if any) is rewritten from the ISF dialect into GLSL 4.50 with Lucid's
//! bindings, compiled by naga's GLSL front end and written out as the WGSL every effect runs
//! as. Errors point at the `.fs` (or `.vs`) line and column, not at the generated code.
//!
//! What runs: single-pass filters (an `inputImage`) and generators (none: they draw on a
//! black canvas, as sources: `isf:NAME`), with `float`, `long`, `bool`, `event`,
//! `color`, `point2D`, `audio` and `audioFFT` inputs (the sound's spectrum), `TIME`,
//! `TIMEDELTA`, `FRAMEINDEX`, `DATE`, `RENDERSIZE`, `PASSINDEX`, `isf_FragNormCoord`, the
//! `IMG_*` functions and `texture2D` on the inputs. A vertex shader's work is done per pixel
//! (ISF vertex shaders compute varyings that are affine in the position, which the
//! rasterizer's interpolation leaves as they are). What does not run yet is named:
//! other image inputs and `IMPORTED`. Transitions (`startImage`, `endImage`, `progress`)
//! drive the crossfader (`--transition`): B is the picture the pass reads, A is bound in
//! the last target slot. Multi-pass `PASSES` render into named
//! targets (up to [`MAX_TARGETS`], ping-ponged so a pass may read what it writes; kept
//! between frames; 16-bit float with `FLOAT`), sized by `WIDTH`/`HEIGHT` expressions.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::definition::{EffectDef, EffectError, MAX_PARAMS};
use super::params::{ParamDef, ParamKind, ParamValue};

/// Lines of GLSL Lucid puts before the `.fs`'s own (kept blank where its header was, so a
/// line of the `.fs` keeps its number after them).
const PRELUDE: &str = r#"#version 450
layout(location = 0) in vec2 lucid_uv;
layout(location = 0) out vec4 lucid_out;
layout(set = 0, binding = 0) uniform texture2D lucid_input;
layout(set = 0, binding = 1) uniform sampler lucid_sampler;
layout(set = 0, binding = 2) uniform LucidGlobals {
    vec2 resolution;
    float time;
    uint frame;
    float mix_amount;
    float bpm;
    float beat;
    float layer;
    vec4 audio_bands;
    float audio_level;
    float audio_onset;
    float time_delta;
    float lucid_pad;
    vec4 date;
} lucid;
layout(set = 0, binding = 6) uniform texture2D lucid_spectrum;
layout(set = 0, binding = 7) uniform texture2D lucid_target0;
layout(set = 0, binding = 8) uniform texture2D lucid_target1;
layout(set = 0, binding = 9) uniform texture2D lucid_target2;
layout(set = 0, binding = 10) uniform texture2D lucid_target3;
layout(set = 0, binding = 11) uniform texture2D lucid_target4;
layout(set = 0, binding = 12) uniform texture2D lucid_target5;
layout(set = 0, binding = 13) uniform texture2D lucid_target6;
layout(set = 0, binding = 14) uniform texture2D lucid_target7;
layout(set = 0, binding = 15) uniform texture2D lucid_target8;
layout(set = 0, binding = 16) uniform texture2D lucid_target9;
layout(set = 0, binding = 17) uniform texture2D lucid_target10;
layout(set = 0, binding = 18) uniform texture2D lucid_target11;
vec4 gl_FragColor_isf;
vec4 isf_FragCoord;
vec2 isf_FragNormCoord;
vec4 isf_Position;
const int inputImage = 0;
const int isf_audio = 1;
vec3 isf_encode(vec3 c) {
    vec3 lo = c * 12.92;
    vec3 hi = 1.055 * pow(max(c, vec3(0.0031308)), vec3(1.0 / 2.4)) - 0.055;
    return mix(hi, lo, vec3(lessThanEqual(c, vec3(0.0031308))));
}
void isf_vertShaderInit() {}
void vv_vertShaderInit() {}
#define vv_FragNormCoord isf_FragNormCoord
#define _inputImage_imgRect vec4(0.0, 0.0, lucid.resolution)
#define _inputImage_imgSize lucid.resolution
#define _inputImage_flip false
#define gl_FragColor gl_FragColor_isf
#define gl_FragCoord isf_FragCoord
#define gl_Position isf_Position
#define texture2D(image, c) isf_norm(image, c)
#define texture2DRect(image, c) isf_pixel(image, c)
#define IMG_NORM_PIXEL(image, c) isf_norm(image, c)
#define IMG_PIXEL(image, c) isf_pixel(image, c)
#define IMG_THIS_PIXEL(image) isf_norm(image, isf_FragNormCoord)
#define IMG_THIS_NORM_PIXEL(image) isf_norm(image, isf_FragNormCoord)
#define IMG_SIZE(image) isf_size(image)
#define TIME lucid.time
#define TIMEDELTA lucid.time_delta
#define FRAMEINDEX int(lucid.frame)
#define RENDERSIZE lucid.resolution
#define DATE lucid.date
"#;

/// An ISF file's kind, by its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsfKind {
    /// Takes `inputImage`: an effect in a chain.
    Filter,
    /// `startImage`, `endImage` and `progress`: a transition.
    Transition,
    /// No image in: a source.
    Generator,
}

/// Loads an ISF filter from the text of its `.fs` (and `.vs`, when one is beside it) as a
/// Lucid effect named `name`.
pub fn parse(
    name: &str,
    origin: &str,
    path: Option<&Path>,
    fs: &str,
    vs: Option<&str>,
) -> Result<EffectDef, EffectError> {
    let header_err = |reason: String| EffectError::Header {
        path: origin.to_string(),
        reason,
    };
    let (header, body) = split_header(fs)
        .ok_or_else(|| header_err("an ISF file starts with a /*{ ... }*/ JSON header".into()))?;
    let header: Value =
        serde_json::from_str(header).map_err(|e| header_err(format!("the JSON header: {e}")))?;
    let inputs = header
        .get("INPUTS")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let kind = kind_of(&inputs);
    let transition = kind == IsfKind::Transition;
    let pass_list = header
        .get("PASSES")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let persistent_buffers: Vec<String> = match header.get("PERSISTENT_BUFFERS") {
        Some(Value::Array(names)) => names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_string))
            .collect(),
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let mut targets: Vec<Target> = Vec::new();
    let mut passes: Vec<(Option<usize>, Option<SizeExpr>, Option<SizeExpr>)> = Vec::new();
    for pass in &pass_list {
        let target = match pass.get("TARGET").and_then(Value::as_str) {
            Some(name) if !is_identifier(name) => {
                return Err(header_err(format!("TARGET '{name}': not a GLSL name")));
            }
            Some(name) => {
                let k = match targets.iter().position(|t| t.name == name) {
                    Some(k) => k,
                    None => {
                        targets.push(Target {
                            name: name.to_string(),
                            persistent: false,
                            float: false,
                        });
                        targets.len() - 1
                    }
                };
                let t = &mut targets[k];
                t.persistent |=
                    truthy(pass.get("PERSISTENT")) || persistent_buffers.iter().any(|n| n == name);
                t.float |= truthy(pass.get("FLOAT"));
                Some(k)
            }
            None => None,
        };
        let size = |key: &str| -> Result<Option<SizeExpr>, EffectError> {
            match pass.get(key) {
                None => Ok(None),
                Some(Value::Number(n)) => Ok(Some(SizeExpr(n.to_string()))),
                Some(Value::String(e)) => {
                    SizeExpr::check(e)
                        .map_err(|why| header_err(format!("{key} \"{e}\": {why}")))?;
                    Ok(Some(SizeExpr(e.clone())))
                }
                Some(other) => Err(header_err(format!("{key}: {other} is not a size"))),
            }
        };
        passes.push((target, size("WIDTH")?, size("HEIGHT")?));
    }
    if targets.len() > MAX_TARGETS {
        return Err(header_err(format!(
            "{} render targets in PASSES: at most {MAX_TARGETS} are supported",
            targets.len()
        )));
    }
    if passes.is_empty() {
        passes.push((None, None, None));
    }
    if header.get("IMPORTED").is_some_and(|v| !is_empty(v)) {
        return Err(header_err("IMPORTED images: not supported yet".into()));
    }
    let mut params = Vec::new();
    let mut defines = String::new();
    let mut assigns = String::new();
    let mut pulses = Vec::new();
    let mut audio = false;
    for input in &inputs {
        let Some(input_name) = input.get("NAME").and_then(Value::as_str) else {
            return Err(header_err("an input without a NAME".into()));
        };
        let ty = input.get("TYPE").and_then(Value::as_str).unwrap_or("");
        if input_name == "inputImage" {
            continue;
        }
        // A transition's two pictures: the crossfader's A and B sides.
        if transition && (input_name == "startImage" || input_name == "endImage") {
            continue;
        }
        if !is_identifier(input_name) {
            return Err(header_err(format!("input '{input_name}': not a GLSL name")));
        }
        let member = format!("lucid_params.p{}", params.len());
        let (kind, default, define) = match ty {
            "float" => {
                let min = number(input.get("MIN")).unwrap_or(0.0);
                let max = number(input.get("MAX")).unwrap_or(1.0).max(min + 1e-6);
                let default = number(input.get("DEFAULT")).unwrap_or(min).clamp(min, max);
                (
                    ParamKind::Float { min, max },
                    ParamValue::Float(default),
                    ("float", member.clone()),
                )
            }
            "long" => {
                let values: Vec<f32> = input
                    .get("VALUES")
                    .and_then(Value::as_array)
                    .map(|v| v.iter().filter_map(|x| number(Some(x))).collect())
                    .unwrap_or_default();
                let min = number(input.get("MIN"))
                    .or_else(|| values.iter().copied().reduce(f32::min))
                    .unwrap_or(0.0);
                let max = number(input.get("MAX"))
                    .or_else(|| values.iter().copied().reduce(f32::max))
                    .unwrap_or(min + 1.0)
                    .max(min + 1.0);
                let default = number(input.get("DEFAULT")).unwrap_or(min).clamp(min, max);
                (
                    ParamKind::Float { min, max },
                    ParamValue::Float(default),
                    ("int", format!("int(floor({member} + 0.5))")),
                )
            }
            "bool" | "event" => {
                if ty == "event" {
                    pulses.push(input_name.to_string());
                }
                let default = input
                    .get("DEFAULT")
                    .map(|v| {
                        v.as_bool()
                            .unwrap_or_else(|| v.as_f64().unwrap_or(0.0) != 0.0)
                    })
                    .unwrap_or(false);
                (
                    ParamKind::Bool,
                    ParamValue::Bool(default && ty == "bool"),
                    ("bool", format!("({member} != 0u)")),
                )
            }
            "color" => {
                let c = numbers(input.get("DEFAULT"));
                let default = [
                    c.first().copied().unwrap_or(1.0),
                    c.get(1).copied().unwrap_or(1.0),
                    c.get(2).copied().unwrap_or(1.0),
                    c.get(3).copied().unwrap_or(1.0),
                ]
                .map(|v| v.clamp(0.0, 1.0));
                (
                    ParamKind::Color,
                    ParamValue::Color(default),
                    ("vec4", member.clone()),
                )
            }
            "point2D" => {
                let p = numbers(input.get("DEFAULT"));
                let default = [
                    p.first().copied().unwrap_or(0.0),
                    p.get(1).copied().unwrap_or(0.0),
                ];
                (
                    ParamKind::Point,
                    ParamValue::Point(default),
                    ("vec2", member.clone()),
                )
            }
            "audio" | "audioFFT" => {
                audio = true;
                let _ = writeln!(defines, "const int {input_name} = isf_audio;");
                continue;
            }
            "image" => {
                return Err(header_err(format!(
                    "image input '{input_name}': only inputImage is supported yet"
                )));
            }
            other => {
                return Err(header_err(format!(
                    "input '{input_name}': unknown TYPE '{other}'"
                )));
            }
        };
        if params.len() == MAX_PARAMS {
            return Err(header_err(format!("more than {MAX_PARAMS} inputs")));
        }
        // Real variables, as ISF's own uniforms are: a macro would also replace a swizzle
        // (`.a` of an input called `a`) or a local of the same name.
        let (ty, value) = define;
        let _ = writeln!(defines, "{ty} {input_name};");
        let _ = writeln!(assigns, "    {input_name} = {value};");
        params.push(ParamDef {
            name: input_name.to_string(),
            kind,
            default,
        });
    }
    for (k, t) in targets.iter().enumerate() {
        let _ = writeln!(defines, "const int {} = {};", t.name, 2 + k);
    }
    if transition {
        if targets.len() >= MAX_TARGETS {
            return Err(header_err(format!(
                "a transition with {} render targets: at most {} (its start image takes one)",
                targets.len(),
                MAX_TARGETS - 1
            )));
        }
        // B is the picture the pass draws over; A comes in the last target slot.
        let _ = writeln!(defines, "const int endImage = inputImage;");
        let _ = writeln!(defines, "const int startImage = {};", 2 + START_SLOT);
    }
    let images = image_functions(targets.len(), audio, transition);
    let last = passes.len() - 1;
    let mut compiled = Vec::with_capacity(passes.len());
    for (i, (target, width, height)) in passes.into_iter().enumerate() {
        let pass_defines = format!("{defines}#define PASSINDEX {i}\n");
        let glsl = compose(
            &images,
            &params,
            &pass_defines,
            &assigns,
            body.clone(),
            vs,
            i == last,
        );
        let lines_before = PRELUDE.lines().count()
            + images.lines().count()
            + params_block(&params).lines().count()
            + pass_defines.lines().count();
        let wgsl = compile(&glsl, origin, lines_before, fs.lines().count())?;
        super::definition::validate(&wgsl, origin)?;
        compiled.push(Pass {
            wgsl,
            target,
            width,
            height,
        });
    }
    let wgsl = compiled[last].wgsl.clone();
    let multi = (compiled.len() > 1 || !targets.is_empty()).then(|| {
        std::sync::Arc::new(Passes {
            passes: compiled,
            targets,
        })
    });
    let description = header
        .get("DESCRIPTION")
        .and_then(Value::as_str)
        .unwrap_or(match kind {
            IsfKind::Generator => "ISF generator",
            IsfKind::Transition => "ISF transition",
            _ => "ISF filter",
        })
        .to_string();
    Ok(EffectDef {
        name: name.to_string(),
        description,
        params,
        origin: origin.to_string(),
        path: path.map(Path::to_path_buf),
        uses_previous: false,
        generator: kind == IsfKind::Generator,
        transition,
        pulses,
        passes: multi,
        wgsl,
    })
}

/// Most render targets an ISF effect's `PASSES` may name (each is a texture binding).
pub const MAX_TARGETS: usize = 12;

/// The target slot a transition's start image (the crossfader's A side) is bound in.
pub const START_SLOT: usize = MAX_TARGETS - 1;

/// A multi-pass ISF effect: its passes in order and the targets they render into.
#[derive(Debug)]
pub struct Passes {
    /// In order; the last one's output is the effect's.
    pub passes: Vec<Pass>,
    /// The named targets, in order of first use (image `2 + index` in the shaders).
    pub targets: Vec<Target>,
}

/// One pass.
#[derive(Debug)]
pub struct Pass {
    /// Its shader (`PASSINDEX` set; the last mixes with the input like any effect).
    pub wgsl: String,
    /// The target it renders into (the last pass also renders the output).
    pub target: Option<usize>,
    /// `WIDTH`, `HEIGHT`: the canvas's when absent.
    pub width: Option<SizeExpr>,
    /// See `width`.
    pub height: Option<SizeExpr>,
}

/// A render target.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its name in the shader.
    pub name: String,
    /// Keeps its content from frame to frame (feedback).
    pub persistent: bool,
    /// 16-bit float texels instead of 8-bit.
    pub float: bool,
}

/// A pass's `WIDTH` or `HEIGHT`: an expression of `$WIDTH`, `$HEIGHT` and the inputs
/// (`floor($WIDTH/4.0)`, `$WIDTH*min(0.5,1.0)`).
#[derive(Debug, Clone, PartialEq)]
pub struct SizeExpr(pub String);

impl SizeExpr {
    /// Parses `text` once with made-up values, so a bad expression fails at load.
    fn check(text: &str) -> Result<(), String> {
        SizeExpr(text.to_string()).eval(&|_| Some(1.0)).map(|_| ())
    }

    /// The value, with `var` giving `$NAME`'s.
    pub fn eval(&self, var: &dyn Fn(&str) -> Option<f64>) -> Result<f64, String> {
        let tokens = tokenize(&self.0)?;
        let mut p = ExprParser {
            tokens: &tokens,
            at: 0,
            var,
        };
        let v = p.sum()?;
        if p.at != tokens.len() {
            return Err(format!("unexpected '{}'", tokens[p.at]));
        }
        Ok(v)
    }

    /// The size in pixels for a `canvas` side, `canvas`/`other` being `$WIDTH`/`$HEIGHT`
    /// as the pass's side is a width or a height, and `param` an input's value.
    pub fn pixels(
        expr: Option<&SizeExpr>,
        (width, height): (u32, u32),
        canvas_side: u32,
        param: &dyn Fn(&str) -> Option<f64>,
    ) -> u32 {
        let Some(expr) = expr else {
            return canvas_side;
        };
        let var = |name: &str| match name {
            "WIDTH" => Some(f64::from(width)),
            "HEIGHT" => Some(f64::from(height)),
            other => param(other),
        };
        expr.eval(&var)
            .ok()
            .filter(|v| v.is_finite())
            .map_or(canvas_side, |v| v.round().clamp(1.0, 8192.0) as u32)
    }
}

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/(),".contains(c) {
            tokens.push(c.to_string());
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == '$' || c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else {
            return Err(format!("'{c}' is not part of a size expression"));
        }
    }
    Ok(tokens)
}

struct ExprParser<'a> {
    tokens: &'a [String],
    at: usize,
    var: &'a dyn Fn(&str) -> Option<f64>,
}

impl ExprParser<'_> {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut v = self.product()?;
        while let Some(op) = self.peek().filter(|t| *t == "+" || *t == "-") {
            let plus = op == "+";
            self.at += 1;
            let r = self.product()?;
            v = if plus { v + r } else { v - r };
        }
        Ok(v)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        while let Some(op) = self.peek().filter(|t| *t == "*" || *t == "/") {
            let times = op == "*";
            self.at += 1;
            let r = self.unary()?;
            v = if times { v * r } else { v / r };
        }
        Ok(v)
    }

    fn unary(&mut self) -> Result<f64, String> {
        if self.peek() == Some("-") {
            self.at += 1;
            return Ok(-self.unary()?);
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<f64, String> {
        let token = self.next().ok_or("the expression ends too soon")?;
        if token == "(" {
            let v = self.sum()?;
            return match self.next().as_deref() {
                Some(")") => Ok(v),
                _ => Err("a '(' is not closed".into()),
            };
        }
        if let Some(name) = token.strip_prefix('$') {
            return (self.var)(name).ok_or_else(|| format!("${name} is not known"));
        }
        if let Ok(v) = token.parse::<f64>() {
            return Ok(v);
        }
        // A function: floor, ceil, round, abs, min, max, pow, sqrt.
        if self.next().as_deref() != Some("(") {
            return Err(format!("'{token}' is not a number, $VARIABLE or function"));
        }
        let mut args = vec![self.sum()?];
        while self.peek() == Some(",") {
            self.at += 1;
            args.push(self.sum()?);
        }
        if self.next().as_deref() != Some(")") {
            return Err(format!("{token}( is not closed"));
        }
        let one = |f: fn(f64) -> f64| match args.as_slice() {
            [a] => Ok(f(*a)),
            _ => Err(format!("{token} takes one value")),
        };
        let two = |f: fn(f64, f64) -> f64| match args.as_slice() {
            [a, b] => Ok(f(*a, *b)),
            _ => Err(format!("{token} takes two values")),
        };
        match token.as_str() {
            "floor" => one(f64::floor),
            "ceil" => one(f64::ceil),
            "round" => one(f64::round),
            "abs" => one(f64::abs),
            "sqrt" => one(f64::sqrt),
            "min" => two(f64::min),
            "max" => two(f64::max),
            "pow" => two(f64::powf),
            other => Err(format!("'{other}' is not a function of size expressions")),
        }
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !matches!(s.trim(), "" | "0" | "false" | "FALSE"),
        _ => false,
    }
}

/// The kind an ISF file is, by its inputs.
pub fn kind_of(inputs: &[Value]) -> IsfKind {
    let has = |name: &str| {
        inputs
            .iter()
            .any(|i| i.get("NAME").and_then(Value::as_str) == Some(name))
    };
    if has("startImage") && has("endImage") && has("progress") {
        IsfKind::Transition
    } else if has("inputImage") {
        IsfKind::Filter
    } else {
        IsfKind::Generator
    }
}

/// The JSON of the header and the text after it, with the header's lines left blank (the
/// text keeps its line numbers).
fn split_header(fs: &str) -> Option<(&str, String)> {
    let start = fs.find("/*")?;
    if !fs[..start].trim().is_empty() {
        return None;
    }
    let end = start + fs[start..].find("*/")?;
    let json = &fs[start + 2..end];
    let blank = "\n".repeat(fs[..end + 2].matches('\n').count());
    Some((json, format!("{blank}{}", &fs[end + 2..])))
}

/// `isf_norm`, `isf_size` and `isf_pixel` for the images this effect has: the input, the
/// sound (`audio`/`audioFFT` inputs) and `targets` render targets. Only those branches are
/// made: each costs every sample a comparison.
fn image_functions(targets: usize, audio: bool, start: bool) -> String {
    let mut norm =
        String::from("vec4 isf_norm(int image, vec2 c) {\n    vec2 f = vec2(c.x, 1.0 - c.y);\n");
    let mut size = String::from("vec2 isf_size(int image) {\n");
    if audio {
        norm.push_str("    if (image == isf_audio) { return vec4(vec3(textureLod(sampler2D(lucid_spectrum, lucid_sampler), vec2(c.x, 0.5), 0.0).r), 1.0); }\n");
        size.push_str("    if (image == isf_audio) { return vec2(textureSize(sampler2D(lucid_spectrum, lucid_sampler), 0)); }\n");
    }
    let slots = (0..targets).chain(start.then_some(START_SLOT));
    for k in slots {
        let _ = writeln!(
            norm,
            "    if (image == {}) {{ return textureLod(sampler2D(lucid_target{k}, lucid_sampler), f, 0.0); }}",
            2 + k
        );
        let _ = writeln!(
            size,
            "    if (image == {}) {{ return vec2(textureSize(sampler2D(lucid_target{k}, lucid_sampler), 0)); }}",
            2 + k
        );
    }
    norm.push_str("    vec4 s = textureLod(sampler2D(lucid_input, lucid_sampler), f, 0.0);\n    return vec4(isf_encode(s.rgb), s.a);\n}\n");
    size.push_str("    return vec2(textureSize(sampler2D(lucid_input, lucid_sampler), 0));\n}\n");
    format!(
        "{norm}{size}vec4 isf_pixel(int image, vec2 p) {{ return isf_norm(image, p / isf_size(image)); }}\n"
    )
}

fn params_block(params: &[ParamDef]) -> String {
    let mut s = String::from("layout(set = 0, binding = 3) uniform LucidParams {\n");
    for (i, p) in params.iter().enumerate() {
        let _ = match p.kind {
            ParamKind::Float { .. } => writeln!(s, "    float p{i}; float p{i}a, p{i}b, p{i}c;"),
            ParamKind::Bool => writeln!(s, "    uint p{i}; float p{i}a, p{i}b, p{i}c;"),
            ParamKind::Point => writeln!(s, "    vec2 p{i}; vec2 p{i}a;"),
            ParamKind::Color => writeln!(s, "    vec4 p{i};"),
        };
    }
    for i in params.len()..MAX_PARAMS {
        let _ = writeln!(s, "    vec4 lucid_unused{i};");
    }
    s.push_str("} lucid_params;\n");
    s
}

/// The whole GLSL: Lucid's prelude, the parameters, the `.fs` (ISF's `main` renamed, its
/// varyings plain globals), the `.vs`'s `main` as a function run first, and the entry
/// point that mixes the result with the input as every Lucid effect does.
fn compose(
    images: &str,
    params: &[ParamDef],
    defines: &str,
    assigns: &str,
    fs: String,
    vs: Option<&str>,
    last: bool,
) -> String {
    let mut s = String::from(PRELUDE);
    s.push_str(images);
    s.push_str(&params_block(params));
    s.push_str(defines);
    s.push_str(&plain_globals(
        &rename_main(&fs, "isf_main"),
        &["in", "varying"],
    ));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    if let Some(vs) = vs {
        let vs = split_header(vs).map_or(vs.to_string(), |(_, b)| b);
        // Its varyings are the `.fs`'s: declared there already.
        let kept: String = rename_main(&vs, "isf_vs_main")
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("out ") || t.starts_with("varying ") {
                    ""
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        s.push_str(&kept);
        s.push('\n');
    }
    s.push_str("void main() {\n");
    s.push_str(assigns);
    s.push_str("    isf_FragNormCoord = vec2(lucid_uv.x, 1.0 - lucid_uv.y);\n");
    s.push_str("    isf_FragCoord = vec4(isf_FragNormCoord * lucid.resolution, 0.0, 1.0);\n");
    if vs.is_some() {
        s.push_str("    isf_vs_main();\n");
    }
    if !last {
        // A pass into a target: what the shader wrote, as it wrote it.
        s.push_str("    isf_main();\n    lucid_out = gl_FragColor_isf;\n}\n");
        return s;
    }
    s.push_str(
        "    isf_main();\n\
         \x20   vec4 lucid_src = isf_norm(inputImage, isf_FragNormCoord);\n\
         \x20   vec4 lucid_fx = clamp(gl_FragColor_isf, vec4(0.0), vec4(1.0));\n\
         \x20   float lucid_amount = clamp(lucid.mix_amount, 0.0, 1.0);\n\
         \x20   float lucid_alpha = lucid.layer > 0.5 ? mix(lucid_src.a, lucid_fx.a, lucid_amount) : 1.0;\n\
         \x20   lucid_out = vec4(mix(lucid_src.rgb, lucid_fx.rgb, lucid_amount), lucid_alpha);\n\
         }\n",
    );
    s
}

/// `void main(` becomes `void NAME(`.
fn rename_main(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_word(rest, "main") {
        let after = rest[at + 4..].trim_start();
        out.push_str(&rest[..at]);
        if after.starts_with('(') {
            out.push_str(name);
        } else {
            out.push_str("main");
        }
        rest = &rest[at + 4..];
    }
    out.push_str(rest);
    out
}

/// The index of `word` as a whole identifier in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let end = at + word.len();
        if (at == 0 || !ident(bytes[at - 1])) && (end == bytes.len() || !ident(bytes[end])) {
            return Some(at);
        }
        from = end;
    }
    None
}

/// Global declarations qualified `in`/`varying` (ISF's varyings) become plain globals: the
/// fragment's code computes them itself.
fn plain_globals(text: &str, qualifiers: &[&str]) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            for q in qualifiers {
                if let Some(rest) = t.strip_prefix(q)
                    && rest.starts_with([' ', '\t'])
                {
                    return format!("{}{}", &l[..l.len() - t.len()], " ".repeat(q.len()) + rest);
                }
            }
            l.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// GLSL to WGSL through naga; an error names the `.fs` line (or the `.vs`'s, past it).
fn compile(
    glsl: &str,
    origin: &str,
    lines_before: usize,
    fs_lines: usize,
) -> Result<String, EffectError> {
    let options = naga::front::glsl::Options::from(naga::ShaderStage::Fragment);
    let mut frontend = naga::front::glsl::Frontend::default();
    let located = |line: usize, col: usize| {
        let line = line.saturating_sub(lines_before);
        if line == 0 {
            format!("{origin} (in Lucid's ISF definitions: a built-in name used otherwise?)")
        } else if line <= fs_lines {
            format!("{origin}:{line}:{col}")
        } else {
            format!(
                "{}:{}:{col}",
                origin.trim_end_matches(".fs").to_string() + ".vs",
                line - fs_lines
            )
        }
    };
    let mut module = frontend.parse(&options, glsl).map_err(|errors| {
        let first = errors.errors.first();
        let (line, col) = first
            .map(|e| {
                let loc = e.meta.location(glsl);
                (loc.line_number as usize, loc.line_position as usize)
            })
            .unwrap_or((0, 0));
        let message = first.map(|e| e.kind.to_string()).unwrap_or_default();
        EffectError::Compile {
            short: format!("{}: {message}", located(line, col)),
            full: errors.emit_to_string_with_path(glsl, origin),
        }
    })?;
    for entry in &mut module.entry_points {
        entry.name = "lucid_fragment".into();
    }
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| {
        let short = format!("{origin}: {}", e.as_inner());
        EffectError::Compile {
            full: short.clone(),
            short,
        }
    })?;
    naga::back::wgsl::write_string(&module, &info, naga::back::wgsl::WriterFlags::empty()).map_err(
        |e| {
            let short = format!("{origin}: writing WGSL: {e}");
            EffectError::Compile {
                full: short.clone(),
                short,
            }
        },
    )
}

fn number(v: Option<&Value>) -> Option<f32> {
    v.and_then(Value::as_f64).map(|f| f as f32)
}

fn numbers(v: Option<&Value>) -> Vec<f32> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| number(Some(x))).collect())
        .unwrap_or_default()
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
