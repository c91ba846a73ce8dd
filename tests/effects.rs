//! The effect chain, rendered for real (lavapipe, headless) and checked against CPU
//! implementations of each effect's math written here, independently of the shaders.
//!
//! The input is a real clip (FFmpeg's `testsrc2`) decoded by Lucid. Lucid's own frame with
//! no effect (`--pipe rgba`) is the "known input": the references apply each effect's math
//! to it. Effects work on sRGB-encoded colour and the textures are sRGB, so filtered samples
//! are interpolated in linear light, as the GPU does; the references do the same.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use support::*;

const W: usize = 320;
const H: usize = 180;
const FRAMES: usize = 4;
/// The clip's rate: slow enough that a loaded machine renders each frame in its time (the
/// pipe is paced in real time, and a frame drawn late is skipped, not piped).
const CLIP_FPS: f32 = 10.0;
const LIMIT: Duration = Duration::from_secs(90);

/// An image as effects see it: sRGB-encoded RGB, 0..1.
#[derive(Clone)]
struct Img {
    w: usize,
    h: usize,
    px: Vec<[f32; 3]>,
}

impl Img {
    fn from_rgba(bytes: &[u8], w: usize, h: usize) -> Img {
        let px = bytes
            .chunks_exact(4)
            .map(|p| {
                [
                    p[0] as f32 / 255.0,
                    p[1] as f32 / 255.0,
                    p[2] as f32 / 255.0,
                ]
            })
            .collect();
        Img { w, h, px }
    }

    fn black(w: usize, h: usize) -> Img {
        Img {
            w,
            h,
            px: vec![[0.0; 3]; w * h],
        }
    }

    fn texel(&self, x: i64, y: i64) -> [f32; 3] {
        let x = x.clamp(0, self.w as i64 - 1) as usize;
        let y = y.clamp(0, self.h as i64 - 1) as usize;
        self.px[y * self.w + x]
    }

    /// Bilinear, clamped to the edge, interpolated in linear light (sRGB texture sampling).
    fn sample(&self, u: f32, v: f32) -> [f32; 3] {
        let x = u * self.w as f32 - 0.5;
        let y = v * self.h as f32 - 0.5;
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let lin = |c: [f32; 3]| c.map(decode);
        let t = [
            lin(self.texel(x0, y0)),
            lin(self.texel(x0 + 1, y0)),
            lin(self.texel(x0, y0 + 1)),
            lin(self.texel(x0 + 1, y0 + 1)),
        ];
        let mut out = [0.0; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let top = t[0][c] * (1.0 - fx) + t[1][c] * fx;
            let bottom = t[2][c] * (1.0 - fx) + t[3][c] * fx;
            *o = encode(top * (1.0 - fy) + bottom * fy);
        }
        out
    }

    /// Applies `f(x, y, u, v)` to every pixel, then mixes with the input and quantizes to
    /// 8 bits, as Lucid's pass does.
    fn map(&self, mix: f32, f: impl Fn(i64, i64, f32, f32) -> [f32; 3]) -> Img {
        let mut px = Vec::with_capacity(self.px.len());
        for y in 0..self.h {
            for x in 0..self.w {
                let u = (x as f32 + 0.5) / self.w as f32;
                let v = (y as f32 + 0.5) / self.h as f32;
                let fx = f(x as i64, y as i64, u, v).map(|c| c.clamp(0.0, 1.0));
                let src = self.px[y * self.w + x];
                let mut out = [0.0; 3];
                for c in 0..3 {
                    let m = src[c] + (fx[c] - src[c]) * mix;
                    out[c] = (m.clamp(0.0, 1.0) * 255.0).round() / 255.0;
                }
                px.push(out);
            }
        }
        Img {
            w: self.w,
            h: self.h,
            px,
        }
    }
}

fn decode(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn encode(c: f32) -> f32 {
    if c <= 0.0031308 {
        c * 12.92
    } else {
        1.055 * c.max(0.0031308).powf(1.0 / 2.4) - 0.055
    }
}

fn luma(c: [f32; 3]) -> f32 {
    c[0] * 0.2126 + c[1] * 0.7152 + c[2] * 0.0722
}

fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

// ---- the references: one function per built-in effect ----

fn color(img: &Img, brightness: f32, contrast: f32, saturation: f32, hue: f32) -> Img {
    img.map(1.0, |x, y, _, _| {
        let mut c = img.texel(x, y).map(|v| v + brightness);
        c = c.map(|v| (v - 0.5) * contrast + 0.5);
        let l = luma(c);
        c = c.map(|v| l + (v - l) * saturation);
        let a = hue.to_radians();
        let k = 0.577_350_26_f32;
        let cross = [k * (c[2] - c[1]), k * (c[0] - c[2]), k * (c[1] - c[0])];
        let dot = k * (c[0] + c[1] + c[2]);
        [0, 1, 2].map(|i| c[i] * a.cos() + cross[i] * a.sin() + k * dot * (1.0 - a.cos()))
    })
}

fn rgb_split(img: &Img, amount: f32, angle: f32) -> Img {
    let a = angle.to_radians();
    let (dx, dy) = (amount * a.cos(), amount * a.sin());
    img.map(1.0, |x, y, u, v| {
        [
            img.sample(u + dx, v + dy)[0],
            img.texel(x, y)[1],
            img.sample(u - dx, v - dy)[2],
        ]
    })
}

fn kaleidoscope(img: &Img, segments: f32, rotation: f32, center: [f32; 2]) -> Img {
    let aspect = img.w as f32 / img.h as f32;
    let wedge = std::f32::consts::TAU / segments.floor();
    img.map(1.0, |_, _, u, v| {
        let (px, py) = ((u - center[0]) * aspect, v - center[1]);
        let r = (px * px + py * py).sqrt();
        let mut a = py.atan2(px) + rotation.to_radians();
        a -= wedge * (a / wedge).floor();
        a = a.min(wedge - a);
        img.sample(center[0] + r * a.cos() / aspect, center[1] + r * a.sin())
    })
}

fn mirror(img: &Img, horizontal: bool, vertical: bool) -> Img {
    img.map(1.0, |_, _, u, v| {
        let u = if horizontal && u > 0.5 { 1.0 - u } else { u };
        let v = if vertical && v > 0.5 { 1.0 - v } else { v };
        img.sample(u, v)
    })
}

fn pixelate(img: &Img, size: f32) -> Img {
    let s = size.floor().max(1.0) as i64;
    img.map(1.0, |x, y, _, _| {
        img.texel(x / s * s + s / 2, y / s * s + s / 2)
    })
}

fn feedback(frames: &[Img], decay: f32, zoom: f32) -> Img {
    let mut prev = Img::black(frames[0].w, frames[0].h);
    for img in frames {
        let p = prev.clone();
        prev = img.map(1.0, |x, y, u, v| {
            let t = p.sample((u - 0.5) / zoom + 0.5, (v - 0.5) / zoom + 0.5);
            let c = img.texel(x, y);
            [0, 1, 2].map(|i| c[i].max(t[i] * decay))
        });
    }
    prev
}

fn edge_glow(img: &Img, strength: f32, tint: [f32; 3]) -> Img {
    img.map(1.0, |x, y, _, _| {
        let l = |dx: i64, dy: i64| luma(img.texel(x + dx, y + dy));
        let gx = (l(1, -1) + 2.0 * l(1, 0) + l(1, 1)) - (l(-1, -1) + 2.0 * l(-1, 0) + l(-1, 1));
        let gy = (l(-1, 1) + 2.0 * l(0, 1) + l(1, 1)) - (l(-1, -1) + 2.0 * l(0, -1) + l(1, -1));
        let e = ((gx * gx + gy * gy).sqrt() * strength).clamp(0.0, 1.0);
        let c = img.texel(x, y);
        [0, 1, 2].map(|i| c[i] + tint[i] * e)
    })
}

fn scanlines(img: &Img, frame: u32, intensity: f32, period: f32, glitch: f32, band: f32) -> Img {
    let band = band.floor().max(1.0) as u32;
    let period = period.floor().max(1.0) as u32;
    img.map(1.0, |x, y, _, _| {
        let h = pcg((y as u32 / band)
            .wrapping_mul(7919)
            .wrapping_add(frame.wrapping_mul(104729)));
        let mut sx = x;
        if (h & 0xffff) as f32 / 65535.0 < glitch {
            sx += (((h >> 16) & 0xff) as i64 - 128) * img.w as i64 / 1280;
        }
        let c = img.texel(sx, y);
        if y as u32 % period == period - 1 {
            c.map(|v| v * (1.0 - intensity))
        } else {
            c
        }
    })
}

fn blur(img: &Img, radius: f32) -> Img {
    let (sx, sy) = (radius / 2.0 / img.w as f32, radius / 2.0 / img.h as f32);
    img.map(1.0, |_, _, u, v| {
        let mut sum = [0.0; 3];
        for j in -2..=2 {
            for i in -2..=2 {
                let s = img.sample(u + i as f32 * sx, v + j as f32 * sy);
                for c in 0..3 {
                    sum[c] += s[c];
                }
            }
        }
        sum.map(|s| s / 25.0)
    })
}

fn tint(img: &Img, tint: [f32; 3], amount: f32, mix: f32) -> Img {
    img.map(mix, |x, y, _, _| {
        let c = img.texel(x, y);
        let l = luma(c);
        [0, 1, 2].map(|i| c[i] + (l * tint[i] - c[i]) * amount)
    })
}

// ---- running Lucid ----

struct Clip {
    _dir: tempfile::TempDir,
    path: PathBuf,
    base: Vec<Img>,
}

/// The input clip and Lucid's rendering of it with no effect, made once per test binary.
fn clip() -> &'static Clip {
    static CLIP: OnceLock<Clip> = OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clip.y4m");
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={W}x{H}:rate={CLIP_FPS}"))
            .args(["-frames:v", &FRAMES.to_string(), "-pix_fmt", "yuv420p"])
            .arg(&path)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        let base = render(&path, &[]);
        Clip {
            _dir: dir,
            path,
            base,
        }
    })
}

fn render_with(path: &Path, args: &[&str], extra: impl FnOnce(&mut Command)) -> Vec<Img> {
    let mut cmd = lucid();
    cmd.args(["--no-preview", "--pipe", "rgba", "--url"])
        .arg(path)
        .args(args);
    extra(&mut cmd);
    let out = run_with_limit(&mut cmd, LIMIT);
    let err = stderr_of(&out);
    assert!(out.status.success(), "lucid {args:?} failed:\n{err}");
    let frame = W * H * 4;
    assert_eq!(
        out.stdout.len(),
        frame * FRAMES,
        "{FRAMES} frames; stderr:\n{err}"
    );
    out.stdout
        .chunks_exact(frame)
        .map(|f| Img::from_rgba(f, W, H))
        .collect()
}

fn render(path: &Path, args: &[&str]) -> Vec<Img> {
    render_with(path, args, |_| {})
}

struct Diff {
    mean: f64,
    p99: u8,
    max: u8,
}

fn diff(a: &Img, b: &Img) -> Diff {
    let mut d: Vec<u8> =
        a.px.iter()
            .zip(&b.px)
            .flat_map(|(p, q)| (0..3).map(move |c| ((p[c] - q[c]).abs() * 255.0).round() as u8))
            .collect();
    let mean = d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64;
    d.sort_unstable();
    Diff {
        mean,
        p99: d[d.len() * 99 / 100],
        max: *d.last().unwrap(),
    }
}

/// The rendered frame matches the reference closely, and the reference is far from the
/// input (so a pass that did nothing, or the wrong thing, fails).
fn assert_golden(name: &str, rendered: &Img, expected: &Img, input: &Img) {
    let d = diff(rendered, expected);
    let moved = diff(input, expected);
    eprintln!(
        "{name}: vs reference mean {:.3} p99 {} max {}; reference vs input mean {:.2}",
        d.mean, d.p99, d.max, moved.mean
    );
    assert!(
        moved.mean > 3.0,
        "{name}: the test settings barely change the picture"
    );
    assert!(
        d.mean < 0.3 && d.p99 <= 2 && d.max <= 8,
        "{name}: rendered differs from the CPU reference (mean {:.3}, p99 {}, max {})",
        d.mean,
        d.p99,
        d.max
    );
}

fn golden_last_frame(name: &str, effect: &str, reference: impl Fn(&Img) -> Img) {
    let clip = clip();
    let out = render(&clip.path, &["--effect", effect]);
    let input = &clip.base[FRAMES - 1];
    assert_golden(name, &out[FRAMES - 1], &reference(input), input);
}

#[test]
fn golden_color() {
    golden_last_frame(
        "color",
        "color:brightness=0.1,contrast=1.3,saturation=0.6,hue=40",
        |i| color(i, 0.1, 1.3, 0.6, 40.0),
    );
}

#[test]
fn golden_rgb_split() {
    golden_last_frame("rgb_split", "rgb_split:amount=0.02,angle=30", |i| {
        rgb_split(i, 0.02, 30.0)
    });
}

#[test]
fn golden_kaleidoscope() {
    golden_last_frame(
        "kaleidoscope",
        "kaleidoscope:segments=5,rotation=20,center=0.45/0.55",
        |i| kaleidoscope(i, 5.0, 20.0, [0.45, 0.55]),
    );
}

#[test]
fn golden_mirror() {
    golden_last_frame("mirror", "mirror:horizontal=true,vertical=true", |i| {
        mirror(i, true, true)
    });
}

#[test]
fn golden_pixelate() {
    golden_last_frame("pixelate", "pixelate:size=7", |i| pixelate(i, 7.0));
}

#[test]
fn golden_feedback_reads_the_previous_output() {
    let clip = clip();
    let out = render(&clip.path, &["--effect", "feedback:decay=0.9,zoom=1.05"]);
    for (n, frame) in out.iter().enumerate().skip(1) {
        let expected = feedback(&clip.base[..=n], 0.9, 1.05);
        assert_golden(
            &format!("feedback frame {n}"),
            frame,
            &expected,
            &clip.base[n],
        );
    }
}

#[test]
fn golden_edge_glow() {
    golden_last_frame("edge_glow", "edge_glow:strength=1.5,color=#ff40c0", |i| {
        edge_glow(i, 1.5, [1.0, 64.0 / 255.0, 192.0 / 255.0])
    });
}

#[test]
fn golden_scanlines_and_glitch() {
    let clip = clip();
    let out = render(
        &clip.path,
        &[
            "--effect",
            "scanlines:intensity=0.5,period=3,glitch=0.6,band=10",
        ],
    );
    // Each frame glitches differently, and the same way every run (frame numbers, not time).
    for (n, input) in clip.base.iter().enumerate() {
        let expected = scanlines(input, n as u32, 0.5, 3.0, 0.6, 10.0);
        assert_golden(&format!("scanlines frame {n}"), &out[n], &expected, input);
    }
}

#[test]
fn golden_blur() {
    golden_last_frame("blur", "blur:radius=4.5", |i| blur(i, 4.5));
}

#[test]
fn golden_tint_with_mix() {
    golden_last_frame("tint", "tint:color=#3080ff,amount=0.7,mix=0.5", |i| {
        tint(i, [48.0 / 255.0, 128.0 / 255.0, 1.0], 0.7, 0.5)
    });
}

#[test]
fn preset_applies_the_chain_in_order() {
    let clip = clip();
    let dir = tempfile::tempdir().unwrap();
    let preset = dir.path().join("show.ron");
    std::fs::write(
        &preset,
        r#"(
    version: 1,
    effects: [
        (effect: "mirror", params: { "horizontal": true }),
        (effect: "blur", enabled: false),
        (effect: "tint", mix: 1.0, params: { "color": (0.2, 0.9, 0.4, 1.0), "amount": 0.8 }),
    ],
)"#,
    )
    .unwrap();
    let out = render(&clip.path, &["--preset", preset.to_str().unwrap()]);
    let input = &clip.base[FRAMES - 1];
    let expected = tint(&mirror(input, true, false), [0.2, 0.9, 0.4], 0.8, 1.0);
    assert_golden("preset mirror -> tint", &out[FRAMES - 1], &expected, input);
    // The same preset plus an --effect appends to it.
    let out = render(
        &clip.path,
        &[
            "--preset",
            preset.to_str().unwrap(),
            "--effect",
            "pixelate:size=4",
        ],
    );
    let expected = pixelate(&expected, 4.0);
    assert_golden("preset + --effect", &out[FRAMES - 1], &expected, input);
}

#[test]
fn bad_effect_arguments_are_usage_errors() {
    let clip = clip();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("wobble.wgsl");
    std::fs::write(
        &broken,
        "/*{ \"params\": [] }*/\nfn effect(uv: vec2<f32>) -> vec4<f32> {\n    return input_color(uv) * undefined_thing;\n}\n",
    )
    .unwrap();
    let bad_preset = dir.path().join("bad.ron");
    std::fs::write(
        &bad_preset,
        "(effects: [(effect: \"color\", params: { \"hue\": 999.0 })])",
    )
    .unwrap();
    let dir_arg = dir.path().to_str().unwrap().to_string();
    for (args, needle) in [
        (
            vec!["--effect", "sparkle"],
            "no effect 'sparkle' (available: blur, color",
        ),
        (vec!["--effect", "blur:radius=99"], "outside 0..16"),
        (
            vec!["--effect", "blur:size=2"],
            "has no parameter 'size' (it has: radius)",
        ),
        (
            vec!["--effects-dir", &dir_arg, "--effect", "wobble"],
            "wobble.wgsl:3:",
        ),
        (
            vec!["--preset", bad_preset.to_str().unwrap()],
            "outside -180..180",
        ),
        (
            vec!["--preset", "/nonexistent/show.ron"],
            "cannot read preset",
        ),
        (vec!["--effects-dir", "/nonexistent/fx"], "no such folder"),
    ] {
        let out = run_with_limit(
            lucid()
                .args(["--no-preview", "--pipe", "rgba", "--url"])
                .arg(&clip.path)
                .args(&args),
            LIMIT,
        );
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{err}");
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
        assert!(
            line.contains(needle),
            "{args:?}: {needle:?} not in {line:?}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing rendered");
    }
}

#[test]
fn list_effects_names_every_builtin_with_its_parameters() {
    let out = run_with_limit(lucid().arg("--list-effects"), LIMIT);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "color",
        "rgb_split",
        "kaleidoscope",
        "mirror",
        "pixelate",
        "feedback",
        "edge_glow",
        "scanlines",
        "blur",
        "tint",
    ] {
        assert!(
            text.contains(&format!("{name} (built-in)")),
            "{name}:\n{text}"
        );
    }
    assert!(
        text.contains("hue          float -180..180, default 0"),
        "{text}"
    );
}

/// Frames of `w`x`h` RGBA from a running Lucid's stdout, on a thread.
fn frame_reader(
    mut stdout: impl Read + Send + 'static,
    w: usize,
    h: usize,
) -> crossbeam_channel::Receiver<Vec<u8>> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        loop {
            let mut f = vec![0u8; w * h * 4];
            if stdout.read_exact(&mut f).is_err() || tx.send(f).is_err() {
                return;
            }
        }
    });
    rx
}

const SOLID: &str = "/*{\n  \"params\": []\n}*/\nfn effect(uv: vec2<f32>) -> vec4<f32> {\n    return vec4(COLOR, 1.0);\n}\n";

fn centre(frame: &[u8], w: usize, h: usize) -> [u8; 3] {
    let i = ((h / 2) * w + w / 2) * 4;
    [frame[i], frame[i + 1], frame[i + 2]]
}

#[test]
fn user_effect_hot_reloads_and_a_broken_edit_keeps_the_last_good_one() {
    let (w, h) = (160, 90);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("solid.wgsl");
    std::fs::write(&file, SOLID.replace("COLOR", "vec3(1.0, 0.0, 0.0)")).unwrap();
    // The built-in test pattern runs until stopped; --duration bounds it regardless.
    let mut child = lucid()
        .args([
            "--no-preview",
            "--pipe",
            "rgba",
            "--width",
            "160",
            "--height",
            "90",
        ])
        .args(["--duration", "60", "--effects-dir"])
        .arg(dir.path())
        .args(["--effect", "solid"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let log_w = log.clone();
    let log_thread = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = log_w.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let frames = frame_reader(child.stdout.take().unwrap(), w, h);
    let wait_for = |want: [u8; 3], what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let f = frames
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| {
                    panic!(
                        "no frames while waiting for {what}; log:\n{}",
                        log.lock().unwrap()
                    )
                });
            if centre(&f, w, h) == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never saw {what}; log:\n{}",
                log.lock().unwrap()
            );
        }
    };
    wait_for([255, 0, 0], "the first version (red)");
    std::fs::write(&file, SOLID.replace("COLOR", "vec3(0.0, 1.0, 0.0)")).unwrap();
    wait_for([0, 255, 0], "the saved edit (green), without a restart");
    // A typo: the green version keeps running and the error names the line.
    std::fs::write(
        &file,
        SOLID
            .replace("COLOR", "vec3(0.0, 0.0, 1.0")
            .replace("1.0);", "1.0;"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.lock().unwrap().contains("does not compile") {
        assert!(
            Instant::now() < deadline,
            "no compile error reported; log:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Drain what was rendered before the error, then every later frame stays green.
    while frames.try_recv().is_ok() {}
    for _ in 0..15 {
        let f = frames
            .recv_timeout(Duration::from_secs(10))
            .expect("frames keep coming");
        assert_eq!(
            centre(&f, w, h),
            [0, 255, 0],
            "the last good version keeps running"
        );
    }
    send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    log_thread.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(status.success(), "{log}");
    let error = log
        .lines()
        .find(|l| l.contains("does not compile"))
        .unwrap_or_default();
    assert!(error.contains("solid.wgsl:5:"), "line number in {error:?}");
    assert!(error.contains("last good version keeps running"), "{error}");
}

/// On a finite input `lucid.time` is the frame's stream time and `lucid.frame` its number,
/// so two renders of the same file are identical, frame for frame.
#[test]
fn finite_input_gets_stream_time_and_renders_the_same_twice() {
    let clip = clip();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("clock.wgsl"),
        "/*{ \"params\": [] }*/\nfn effect(uv: vec2<f32>) -> vec4<f32> {\n    \
         return vec4(fract(lucid.time * 2.0), f32(lucid.frame) / 255.0, lucid.resolution.x / 1000.0, 1.0);\n}\n",
    )
    .unwrap();
    let args = [
        "--effects-dir",
        dir.path().to_str().unwrap(),
        "--effect",
        "clock",
    ];
    let first = render(&clip.path, &args);
    let second = render(&clip.path, &args);
    for (n, (a, b)) in first.iter().zip(&second).enumerate() {
        assert!(a.px == b.px, "frame {n} differs between two renders");
        let px = a.px[W * H / 2 + W / 2];
        let want = [
            ((n as f32 / CLIP_FPS * 2.0).fract() * 255.0).round(),
            n as f32,
            (W as f32 / 1000.0 * 255.0).round(),
        ];
        let got = px.map(|v| (v * 255.0).round());
        for c in 0..3 {
            assert!(
                (got[c] - want[c]).abs() <= 1.0,
                "frame {n}: {got:?}, want {want:?}"
            );
        }
    }
}

/// ISF files as VJs have them: written in the ISF dialect (`gl_FragColor`, `IMG_*`,
/// `texture2D`, `isf_FragNormCoord` with its origin at the bottom left), in a folder.
fn isf_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Color Invert.fs"),
        r#"/*{
    "ISFVSN": "2",
    "DESCRIPTION": "Inverts the RGB channels of the input",
    "INPUTS": [ { "NAME": "inputImage", "TYPE": "image" } ]
}*/
void main() {
    vec4 srcPixel = IMG_THIS_PIXEL(inputImage);
    gl_FragColor = vec4(1.0 - srcPixel.r, 1.0 - srcPixel.g, 1.0 - srcPixel.b, srcPixel.a);
}
"#,
    )
    .unwrap();
    // The mirror is ISF's own coordinates: `y > 0.5` is the top half, reflected down.
    std::fs::write(
        dir.path().join("Flip Mirror.fs"),
        r#"/*{
    "ISFVSN": "2",
    "INPUTS": [
        { "NAME": "inputImage", "TYPE": "image" },
        { "NAME": "horizontal", "TYPE": "bool", "DEFAULT": true },
        { "NAME": "a", "TYPE": "float", "MIN": 0.0, "MAX": 2.0, "DEFAULT": 1.0 }
    ]
}*/
varying vec2 mirrored;
void main() {
    mirrored = isf_FragNormCoord;
    if (horizontal && mirrored.x > 0.5) mirrored.x = 1.0 - mirrored.x;
    if (mirrored.y > 0.5) mirrored.y = 1.0 - mirrored.y;
    vec4 c = texture2D(inputImage, mirrored);
    c.a = a;
    gl_FragColor = c;
}
"#,
    )
    .unwrap();
    dir
}

/// The clip rendered with an effect from an ISF folder.
fn render_isf(dir: &Path, effect: &str) -> Vec<Img> {
    render(
        &clip().path,
        &["--effects-dir", dir.to_str().unwrap(), "--effect", effect],
    )
}

#[test]
fn golden_isf_inversion() {
    let clip = clip();
    let dir = isf_dir();
    let out = render_isf(dir.path(), "Color Invert");
    let input = &clip.base[FRAMES - 1];
    let expected = input.map(1.0, |x, y, _, _| input.texel(x, y).map(|c| 1.0 - c));
    assert_golden("ISF inversion", &out[FRAMES - 1], &expected, input);
}

#[test]
fn golden_isf_mirror_in_isf_coordinates_with_its_inputs_set() {
    let clip = clip();
    let dir = isf_dir();
    let out = render_isf(dir.path(), "Flip Mirror:horizontal=false");
    let input = &clip.base[FRAMES - 1];
    // Top-left coordinates here: ISF's top half (its y > 0.5) is our v < 0.5.
    let expected = input.map(1.0, |_, _, u, v| {
        let v = if v < 0.5 { 1.0 - v } else { v };
        input.sample(u, v)
    });
    assert_golden("ISF mirror", &out[FRAMES - 1], &expected, input);
}

#[test]
fn check_effects_lists_each_effect_and_places_an_isf_error_on_the_fs_line() {
    let dir = isf_dir();
    let broken = "/*{\n \"INPUTS\": [ { \"NAME\": \"inputImage\", \"TYPE\": \"image\" } ]\n}*/\nvoid main() {\n    vec4 c = IMG_THIS_PIXEL(inputImage);\n    gl_FragColor = c * undefinedThing;\n}\n";
    std::fs::write(dir.path().join("Broken.fs"), broken).unwrap();
    std::fs::write(
        dir.path().join("Mask.fs"),
        "/*{ \"INPUTS\": [ {\"NAME\": \"inputImage\", \"TYPE\": \"image\"}, {\"NAME\": \"maskImage\", \"TYPE\": \"image\"} ] }*/\nvoid main() { gl_FragColor = IMG_THIS_PIXEL(maskImage); }\n",
    )
    .unwrap();
    let out = run_with_limit(
        lucid()
            .arg("--check-effects")
            .arg("--effects-dir")
            .arg(dir.path()),
        LIMIT,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr_of(&out));
    assert!(text.lines().any(|l| l == "ok Color Invert"), "{text}");
    assert!(text.lines().any(|l| l == "ok Flip Mirror"), "{text}");
    assert!(
        text.lines().any(|l| l == "ok tint"),
        "built-ins too: {text}"
    );
    let broken_line = text
        .lines()
        .find(|l| l.starts_with("error Broken: "))
        .unwrap();
    assert!(
        broken_line.contains("Broken.fs:6:") && broken_line.contains("undefinedThing"),
        "the .fs line, not the generated code's: {broken_line}"
    );
    let mask = text
        .lines()
        .find(|l| l.starts_with("error Mask: "))
        .unwrap();
    assert!(mask.contains("maskImage"), "named, not black: {mask}");
    let total = text
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("error "))
        .count();
    assert!(
        text.ends_with(&format!("{} of {total} effects load\n", total - 2)),
        "{text}"
    );
    // Asking for the broken one at start is a usage error.
    let out = run_with_limit(
        lucid()
            .args([
                "--no-preview",
                "--duration",
                "1",
                "--pipe",
                "y4m",
                "--effect",
                "Broken",
            ])
            .arg("--effects-dir")
            .arg(dir.path()),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("Broken.fs:6:"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn golden_isf_generator_colour_input_as_the_source_and_as_a_layer() {
    let dir = isf_dir();
    std::fs::write(
        dir.path().join("Solid Fill.fs"),
        r#"/*{
    "ISFVSN": "2",
    "DESCRIPTION": "One colour, with a stripe at the bottom in ISF's coordinates",
    "INPUTS": [ { "NAME": "fill", "TYPE": "color", "DEFAULT": [1.0, 1.0, 1.0, 1.0] } ]
}*/
void main() {
    gl_FragColor = isf_FragNormCoord.y < 0.25 ? vec4(0.0, 0.0, 0.0, 1.0) : fill;
}
"#,
    )
    .unwrap();
    let (w, h) = (64usize, 48usize);
    let frames = |args: &[&str]| -> Vec<u8> {
        let out = run_with_limit(
            lucid()
                .args(["--no-preview", "--pipe", "rgba", "--duration", "0.5"])
                .args(["--width", &w.to_string(), "--height", &h.to_string()])
                .arg("--effects-dir")
                .arg(dir.path())
                .args(args),
            LIMIT,
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert!(
            out.stdout.len() >= w * h * 4 * 5,
            "frames came: {}",
            stderr_of(&out)
        );
        out.stdout[out.stdout.len() - w * h * 4..].to_vec()
    };
    let at = |f: &[u8], x: usize, y: usize| {
        let i = (y * w + x) * 4;
        [f[i], f[i + 1], f[i + 2]]
    };
    let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 2);
    // The bottom source: the colour above, the stripe at the bottom (ISF's y < 0.25).
    let f = frames(&["--url", "isf:Solid Fill:fill=#3366cc"]);
    assert!(
        close(at(&f, w / 2, h / 4), [0x33, 0x66, 0xcc]),
        "{:?}",
        at(&f, w / 2, h / 4)
    );
    assert!(
        close(at(&f, w / 2, h - 2), [0, 0, 0]),
        "{:?}",
        at(&f, w / 2, h - 2)
    );
    // A layer at half opacity over the test pattern's picture: half its colour.
    let f = frames(&[
        "--layer",
        "isf:Solid Fill:fill=#ff0000:opacity=0.5",
        "--url",
        "canvas:64x48",
    ]);
    let p = at(&f, w / 2, h / 4);
    assert!(
        p[0].abs_diff(128) <= 3 && p[1] <= 2 && p[2] <= 2,
        "half red over black: {p:?}"
    );
    // A filter is not a source.
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--url", "isf:Color Invert", "--effects-dir"])
            .arg(dir.path()),
        LIMIT,
    );
    assert_one_clear_error(&out, 2, "not an ISF generator");
}

/// An ISF file in a folder of its own.
fn isf_file(name: &str, text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("{name}.fs")), text).unwrap();
    dir
}

#[test]
fn golden_isf_persistent_multi_pass_feedback_over_frames() {
    // Pass 0 keeps a running mean in a persistent float target; pass 1 shows it.
    let dir = isf_file(
        "Running Mean",
        r#"/*{
    "ISFVSN": "2",
    "INPUTS": [ { "NAME": "inputImage", "TYPE": "image" } ],
    "PASSES": [ { "TARGET": "acc", "PERSISTENT": true, "FLOAT": true }, {} ]
}*/
void main() {
    if (PASSINDEX == 0) {
        gl_FragColor = mix(IMG_THIS_PIXEL(acc), IMG_THIS_PIXEL(inputImage), 0.5);
    } else {
        gl_FragColor = vec4(IMG_THIS_PIXEL(acc).rgb, 1.0);
    }
}
"#,
    );
    let clip = clip();
    let out = render_isf(dir.path(), "Running Mean");
    let mut mean = Img::black(W, H);
    for (n, frame) in out.iter().enumerate() {
        let input = &clip.base[n];
        let prev = mean.clone();
        mean = input.map(1.0, |x, y, _, _| {
            let (a, b) = (prev.texel(x, y), input.texel(x, y));
            [0, 1, 2].map(|i| 0.5 * a[i] + 0.5 * b[i])
        });
        // Halving 8-bit values lands on half steps, which the GPU and this reference
        // round apart: within one step everywhere, but on a third of the values.
        let (d, moved) = (diff(frame, &mean), diff(input, &mean));
        assert!(
            d.mean < 0.6 && d.max <= 2,
            "frame {n}: rendered differs from the running mean (mean {:.3}, max {})",
            d.mean,
            d.max
        );
        assert!(
            n == 0 || moved.mean > 3.0,
            "frame {n}: the mean is the input"
        );
    }
}

#[test]
fn isf_pass_sizes_follow_their_width_and_height_expressions() {
    let dir = isf_file(
        "Sizes",
        r#"/*{
    "ISFVSN": "2",
    "INPUTS": [
        { "NAME": "inputImage", "TYPE": "image" },
        { "NAME": "divide", "TYPE": "float", "MIN": 1.0, "MAX": 8.0, "DEFAULT": 4.0 }
    ],
    "PASSES": [
        { "TARGET": "small", "WIDTH": "floor($WIDTH/$divide)", "HEIGHT": "max($HEIGHT/4.0, 2.0) + 1" },
        {}
    ]
}*/
void main() {
    if (PASSINDEX == 0) {
        gl_FragColor = vec4(RENDERSIZE / 255.0, 0.0, 1.0);
    } else {
        vec2 size = IMG_SIZE(small);
        vec4 seen = IMG_NORM_PIXEL(small, vec2(0.5));
        gl_FragColor = vec4(size.x / 255.0, size.y / 255.0, seen.r, 1.0);
    }
}
"#,
    );
    let out = render_isf(dir.path(), "Sizes:divide=5");
    let last = &out[FRAMES - 1];
    let px = last
        .texel(W as i64 / 2, H as i64 / 2)
        .map(|c| (c * 255.0).round() as u32);
    // 320/5 = 64 wide, 180/4 + 1 = 46 high; the small pass saw its own RENDERSIZE.
    assert_eq!(px, [64, 46, 64], "size and RENDERSIZE of the target pass");
}

#[test]
fn golden_isf_transition_on_the_crossfader_at_its_midpoint() {
    let dir = isf_file(
        "Wipe",
        r#"/*{ "ISFVSN": "2", "INPUTS": [
  { "NAME": "startImage", "TYPE": "image" },
  { "NAME": "endImage", "TYPE": "image" },
  { "NAME": "progress", "TYPE": "float", "MIN": 0.0, "MAX": 1.0, "DEFAULT": 0.0 } ] }*/
void main() {
    gl_FragColor = isf_FragNormCoord.x < progress ? IMG_THIS_PIXEL(endImage) : IMG_THIS_PIXEL(startImage);
}
"#,
    );
    std::fs::write(
        dir.path().join("Solid Fill.fs"),
        "/*{ \"INPUTS\": [ { \"NAME\": \"fill\", \"TYPE\": \"color\" } ] }*/\nvoid main() { gl_FragColor = fill; }\n",
    )
    .unwrap();
    let record = dir.path().join("wipe.mp4");
    // Bus A red, bus B blue; the crossfader goes from A to B over 2 s of video.
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--url", "canvas:320x180", "--duration", "3"])
            .arg("--effects-dir")
            .arg(dir.path())
            .args(["--layer", "isf:Solid Fill:fill=#ff0000:bus=a"])
            .args(["--layer", "isf:Solid Fill:fill=#0000ff:bus=b"])
            .args(["--transition", "Wipe", "--crossfade", "2", "--record"])
            .arg(&record),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    // Each frame: where the wipe's edge is (B, blue, left of it; A, red, right of it).
    let mut edges: Vec<(f64, f64)> = Vec::new();
    let mut mixed = 0;
    decode_timed(&record, |t, f| {
        let (w, h) = (f.width() as usize, f.height() as usize);
        let (stride, y) = (f.stride(0), f.data(0));
        let (cstride, cb) = (f.stride(1), f.data(1));
        let row = h / 2;
        // Blue has a high Cb; red a low one; a plain mix of the two would sit between.
        let blue: Vec<bool> = (0..w / 2)
            .map(|x| cb[row / 2 * cstride + x] > 160)
            .collect();
        let red = |x: usize| cb[row / 2 * cstride + x] < 110;
        if y[row * stride + 2] < 20 && y[row * stride + w - 3] < 20 {
            return; // the layers' first frame is not there yet
        }
        if (0..w / 2).any(|x| !blue[x] && !red(x)) {
            mixed += 1;
        }
        let edge = blue.iter().position(|b| !b).unwrap_or(w / 2) as f64 / (w / 2) as f64;
        edges.push((t, edge));
    });
    let t0 = edges.first().map(|e| e.0).unwrap_or_default();
    // Real-time pacing: a loaded machine skips frames, but the crossfade is covered.
    assert!(edges.len() >= 15, "{} frames with both sides", edges.len());
    assert!(
        edges.iter().any(|(_, e)| *e < 0.25) && edges.iter().any(|(_, e)| *e > 0.9),
        "the wipe crosses the picture: {edges:?}"
    );
    // The edge follows progress = time / 2 s (the wipe's own quantisation: 2 px).
    let far: Vec<&(f64, f64)> = edges
        .iter()
        .filter(|(t, e)| (e - ((t - t0 + 1.0 / 30.0) / 2.0).min(1.0)).abs() > 0.06)
        .collect();
    assert!(
        far.len() <= 2,
        "edge off its progress: {far:?} of {edges:?}"
    );
    let mid = edges.iter().find(|(_, e)| (0.45..=0.55).contains(e));
    assert!(mid.is_some(), "a frame at the midpoint: {edges:?}");
    assert!(
        mixed <= 2,
        "{mixed} frames mixed the sides instead of wiping"
    );
}
