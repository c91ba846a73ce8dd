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

use super::definition::{EffectDef, EffectError, MAX_PARAMS, is_identifier};
use super::params::{ParamDef, ParamKind, ParamValue};
use super::passes::{ImportedImage, MAX_TARGETS, Pass, Passes, START_SLOT, SizeExpr, Target};

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
vec4 isf_FragColor;
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
#define gl_FragColor isf_FragColor
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
    let imported = imported_images(&header, path).map_err(header_err)?;
    for (j, image) in imported.iter().enumerate() {
        let _ = writeln!(
            defines,
            "const int {} = {};",
            image.name,
            2 + targets.len() + j
        );
    }
    let slots = targets.len() + imported.len();
    if slots > MAX_TARGETS || (transition && slots >= MAX_TARGETS) {
        return Err(header_err(format!(
            "{} render targets and {} imported images: at most {} together{}",
            targets.len(),
            imported.len(),
            MAX_TARGETS,
            if transition {
                ", less the transition's start image"
            } else {
                ""
            }
        )));
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
    let images = image_functions(slots, audio, transition);
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
        dump_glsl(name, i, &glsl);
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
    let multi = (compiled.len() > 1 || !targets.is_empty() || !imported.is_empty()).then(|| {
        std::sync::Arc::new(Passes {
            passes: compiled,
            targets,
            imported: imported.into_iter().map(std::sync::Arc::new).collect(),
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

/// Largest imported image side (a texture every GPU takes).
const MAX_IMPORTED_SIDE: u32 = 4096;

/// The `IMPORTED` images (`{"NAME": {"PATH": "file.png"}}` or `[{"NAME":, "PATH":}]`),
/// read from beside the `.fs`.
fn imported_images(header: &Value, fs: Option<&Path>) -> Result<Vec<ImportedImage>, String> {
    let entries: Vec<(String, String)> = match header.get("IMPORTED") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(name, v)| {
                let path = v.get("PATH").and_then(Value::as_str).unwrap_or_default();
                (name.clone(), path.to_string())
            })
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                let name = v.get("NAME").and_then(Value::as_str).unwrap_or_default();
                let path = v.get("PATH").and_then(Value::as_str).unwrap_or_default();
                (name.to_string(), path.to_string())
            })
            .collect(),
        Some(other) => return Err(format!("IMPORTED: {other} is not a list of images")),
    };
    let folder = fs.and_then(Path::parent).unwrap_or(Path::new("."));
    entries
        .into_iter()
        .map(|(name, path)| {
            if !is_identifier(&name) {
                return Err(format!("IMPORTED '{name}': not a GLSL name"));
            }
            if path.is_empty() {
                return Err(format!("IMPORTED '{name}': no PATH"));
            }
            let file = folder.join(&path);
            let image = image::ImageReader::open(&file)
                .map_err(|e| format!("IMPORTED '{name}': {}: {e}", file.display()))?
                .with_guessed_format()
                .map_err(|e| format!("IMPORTED '{name}': {}: {e}", file.display()))?
                .decode()
                .map_err(|e| format!("IMPORTED '{name}': {}: {e}", file.display()))?;
            if image.width().max(image.height()) > MAX_IMPORTED_SIDE {
                return Err(format!(
                    "IMPORTED '{name}': {} is {}x{} (at most {MAX_IMPORTED_SIDE} a side)",
                    file.display(),
                    image.width(),
                    image.height()
                ));
            }
            let rgba = image.to_rgba8();
            Ok(ImportedImage {
                name,
                size: rgba.dimensions(),
                rgba: rgba.into_raw(),
            })
        })
        .collect()
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !matches!(s.trim(), "" | "0" | "false" | "FALSE"),
        _ => false,
    }
}

/// With `LUCID_ISF_GLSL=DIR`, each pass's GLSL is written there as `NAME.PASS.frag`: what
/// an ISF file was rewritten into, for an author chasing a translation, and for comparing
/// compilers (`scripts/isf_glslang.py` runs glslang on them).
fn dump_glsl(name: &str, pass: usize, glsl: &str) {
    let Some(dir) = std::env::var_os("LUCID_ISF_GLSL") else {
        return;
    };
    let path = Path::new(&dir).join(format!("{name}.{pass}.frag"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, glsl)) {
        tracing::warn!("LUCID_ISF_GLSL: {}: {e}", path.display());
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
        s.push_str("    isf_main();\n    lucid_out = isf_FragColor;\n}\n");
        return s;
    }
    s.push_str(
        "    isf_main();\n\
         \x20   vec4 lucid_src = isf_norm(inputImage, isf_FragNormCoord);\n\
         \x20   vec4 lucid_fx = clamp(isf_FragColor, vec4(0.0), vec4(1.0));\n\
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
    return_zero_at_the_end(&mut module);
    convert_returned_scalars(&mut module);
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| {
        let mut short = format!("{origin}: {}", e.as_inner());
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e.as_inner());
        while let Some(inner) = source {
            let _ = write!(short, ": {inner}");
            source = inner.source();
        }
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

/// A function that can reach its end without returning its value (`if ... return a; else
/// if ... return b;` and nothing after) is undefined in GLSL, and every GL driver returns
/// zero there; naga refuses it (its front end ends such paths with a value-less `return`).
/// Those paths return zero here.
fn return_zero_at_the_end(module: &mut naga::Module) {
    for (_, function) in module.functions.iter_mut() {
        let Some(result) = &function.result else {
            continue;
        };
        let zero = function.expressions.append(
            naga::Expression::ZeroValue(result.ty),
            naga::Span::UNDEFINED,
        );
        each_statement(&mut function.body, &mut |s| {
            if let naga::Statement::Return { value } = s
                && value.is_none()
            {
                *value = Some(zero);
            }
        });
        if !matches!(function.body.last(), Some(naga::Statement::Return { .. })) {
            function.body.push(
                naga::Statement::Return { value: Some(zero) },
                naga::Span::UNDEFINED,
            );
        }
    }
}

/// GLSL converts a returned `int` to a `float` function's type (`return 0;`); naga does
/// not. Each such return gets the conversion.
fn convert_returned_scalars(module: &mut naga::Module) {
    use naga::{Expression, Scalar, TypeInner};
    let mut fixes = Vec::new();
    for (handle, function) in module.functions.iter() {
        let Some(result) = &function.result else {
            continue;
        };
        let TypeInner::Scalar(want) = module.types[result.ty].inner else {
            continue;
        };
        let ctx = naga::proc::ResolveContext::with_locals(
            module,
            &function.local_variables,
            &function.arguments,
        );
        let mut typifier = naga::front::Typifier::new();
        let mut returned = Vec::new();
        each_statement(&mut function.body.clone(), &mut |s| {
            if let naga::Statement::Return { value: Some(e) } = s {
                returned.push(*e);
            }
        });
        let mismatched: Vec<_> = returned
            .into_iter()
            .filter(|e| {
                typifier.grow(*e, &function.expressions, &ctx).is_ok()
                    && matches!(
                        typifier.get(*e, &module.types),
                        TypeInner::Scalar(Scalar { kind, .. }) if *kind != want.kind
                    )
            })
            .collect();
        if !mismatched.is_empty() {
            fixes.push((handle, want, mismatched));
        }
    }
    for (handle, want, mismatched) in fixes {
        let function = &mut module.functions[handle];
        let converted: Vec<_> = mismatched
            .iter()
            .map(|e| {
                let to = function.expressions.append(
                    Expression::As {
                        expr: *e,
                        kind: want.kind,
                        convert: Some(want.width),
                    },
                    naga::Span::UNDEFINED,
                );
                (*e, to)
            })
            .collect();
        // Each `return e` becomes `emit to; return to`.
        each_statement(&mut function.body, &mut |statement| {
            if let naga::Statement::Return { value: Some(e) } = statement
                && let Some((_, to)) = converted.iter().find(|(from, _)| from == e)
            {
                let mut replacement = naga::Block::with_capacity(2);
                replacement.push(
                    naga::Statement::Emit(naga::Range::new_from_bounds(*to, *to)),
                    naga::Span::UNDEFINED,
                );
                replacement.push(
                    naga::Statement::Return { value: Some(*to) },
                    naga::Span::UNDEFINED,
                );
                *statement = naga::Statement::Block(replacement);
            }
        });
    }
}

/// Calls `f` on every statement of `block` and of the blocks inside it.
fn each_statement(block: &mut naga::Block, f: &mut impl FnMut(&mut naga::Statement)) {
    for statement in block.iter_mut() {
        f(statement);
        match statement {
            naga::Statement::Block(inner) => each_statement(inner, f),
            naga::Statement::If { accept, reject, .. } => {
                each_statement(accept, f);
                each_statement(reject, f);
            }
            naga::Statement::Switch { cases, .. } => {
                for case in cases {
                    each_statement(&mut case.body, f);
                }
            }
            naga::Statement::Loop {
                body, continuing, ..
            } => {
                each_statement(body, f);
                each_statement(continuing, f);
            }
            _ => {}
        }
    }
}

fn number(v: Option<&Value>) -> Option<f32> {
    v.and_then(Value::as_f64).map(|f| f as f32)
}

fn numbers(v: Option<&Value>) -> Vec<f32> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|x| number(Some(x))).collect())
        .unwrap_or_default()
}
