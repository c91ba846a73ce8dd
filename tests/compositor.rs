//! The compositor (issue 12): layers over the `--url` video, blended by the W3C
//! "Compositing and Blending Level 1" formulas (written out again here from the spec, not
//! taken from Lucid), at an opacity, with the layer's alpha; a layer whose source cannot
//! open leaves the show going and says so.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

const LIMIT: Duration = Duration::from_secs(120);
const W: u32 = 64;
const H: u32 = 36;

/// Backdrop channels 0.2, 0.4, 0.8 and a layer of 0.78, 0.25, 0.5 at alpha 0.8: both sides
/// of every branch in the formulas (soft-light's cb <= 0.25, hard-light's cs <= 0.5).
const BACKDROP: [u8; 3] = [51, 102, 204];
const SOURCE: [u8; 4] = [200, 64, 128, 204];

/// W3C's separable blend functions, B(Cb, Cs), straight from the spec's pseudo-code.
fn w3c(mode: &str, cb: f64, cs: f64) -> f64 {
    let multiply = cb * cs;
    let screen = |b: f64, s: f64| b + s - b * s;
    let hard_light = |b: f64, s: f64| {
        if s <= 0.5 {
            b * 2.0 * s
        } else {
            screen(b, 2.0 * s - 1.0)
        }
    };
    match mode {
        "normal" => cs,
        "multiply" => multiply,
        "screen" => screen(cb, cs),
        "overlay" => hard_light(cs, cb),
        "darken" => cb.min(cs),
        "lighten" => cb.max(cs),
        "color-dodge" => {
            if cb == 0.0 {
                0.0
            } else if cs == 1.0 {
                1.0
            } else {
                (cb / (1.0 - cs)).min(1.0)
            }
        }
        "color-burn" => {
            if cb == 1.0 {
                1.0
            } else if cs == 0.0 {
                0.0
            } else {
                1.0 - ((1.0 - cb) / cs).min(1.0)
            }
        }
        "hard-light" => hard_light(cb, cs),
        "soft-light" => {
            if cs <= 0.5 {
                cb - (1.0 - 2.0 * cs) * cb * (1.0 - cb)
            } else {
                let d = if cb <= 0.25 {
                    ((16.0 * cb - 12.0) * cb + 4.0) * cb
                } else {
                    cb.sqrt()
                };
                cb + (2.0 * cs - 1.0) * (d - cb)
            }
        }
        "difference" => (cb - cs).abs(),
        "exclusion" => cb + cs - 2.0 * cb * cs,
        // Linear dodge (not in the W3C list): the sum, clipped.
        "add" => (cb + cs).min(1.0),
        other => panic!("no mode {other}"),
    }
}

/// Source-over with a blend, opaque backdrop: (1 - as) * Cb + as * B(Cb, Cs).
fn expected(mode: &str, backdrop: [u8; 3], source: [u8; 4], opacity: f64) -> [f64; 3] {
    let a = f64::from(source[3]) / 255.0 * opacity;
    std::array::from_fn(|i| {
        let (cb, cs) = (f64::from(backdrop[i]) / 255.0, f64::from(source[i]) / 255.0);
        ((1.0 - a) * cb + a * w3c(mode, cb, cs)) * 255.0
    })
}

/// One second of a flat colour as RGB video (PNG in Matroska: RGB stays RGB in Lucid).
fn rgb_video(dir: &Path, rgb: [u8; 3]) -> PathBuf {
    let [r, g, b] = rgb;
    let source = format!("color=c=0x{r:02x}{g:02x}{b:02x}:s={W}x{H}:r=30:d=1,format=rgb24");
    lavfi_file(&dir.join("backdrop.mkv"), &source, &["-c:v", "png"])
}

/// A flat RGBA still.
fn rgba_png(dir: &Path, rgba: [u8; 4]) -> PathBuf {
    let [r, g, b, a] = rgba;
    let alpha = f64::from(a) / 255.0;
    let source = format!("color=c=0x{r:02x}{g:02x}{b:02x}@{alpha}:s={W}x{H},format=rgba");
    lavfi_file(&dir.join("layer.png"), &source, &["-frames:v", "1"])
}

/// The centre pixel of the last frame Lucid pipes, and the last stats line.
fn composite(base: &Path, layer: &str, dir: &Path) -> ([u8; 3], serde_json::Value) {
    let stats = dir.join("stats.jsonl");
    let _ = std::fs::remove_file(&stats);
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "rgba", "--url"])
            .arg(base)
            .args(["--layer", layer])
            .arg("--stats-json")
            .arg(&stats),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let frame = (W * H * 4) as usize;
    assert!(out.stdout.len() >= frame, "no frame");
    let last = &out.stdout[out.stdout.len() - frame..];
    let at = (((H / 2) * W + W / 2) * 4) as usize;
    ([last[at], last[at + 1], last[at + 2]], last_stats(&stats))
}

#[test]
fn every_blend_mode_follows_the_w3c_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let (backdrop, source) = (BACKDROP, SOURCE);
    let base = rgb_video(dir.path(), backdrop);
    let png = rgba_png(dir.path(), source);
    let png = png.to_str().unwrap();
    let mut failures = Vec::new();
    for mode in [
        "normal",
        "multiply",
        "screen",
        "overlay",
        "darken",
        "lighten",
        "color-dodge",
        "color-burn",
        "hard-light",
        "soft-light",
        "difference",
        "exclusion",
        "add",
    ] {
        for opacity in [1.0, 0.5] {
            let (got, stats) = composite(
                &base,
                &format!("{png}:blend={mode},opacity={opacity}"),
                dir.path(),
            );
            let want = expected(mode, backdrop, source, opacity);
            let off = got
                .iter()
                .zip(want)
                .map(|(g, w)| (f64::from(*g) - w).abs())
                .fold(0.0, f64::max);
            if off > 1.5 {
                failures.push(format!(
                    "{mode} at {opacity}: got {got:?}, W3C says {want:.1?}"
                ));
            }
            assert_eq!(stats["layers"][0]["state"], "ended", "{stats}");
            assert!(stats["layers"][0]["shown"].as_u64().unwrap() >= 1);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_yuv_layer_fits_and_a_missing_layer_leaves_the_show_going() {
    let dir = tempfile::tempdir().unwrap();
    let base = rgb_video(dir.path(), [0, 0, 0]);
    // A 4:2:0 layer of another shape: contained in the middle, the sides keep the backdrop.
    let tall = lavfi_file(
        &dir.path().join("tall.y4m"),
        "color=c=0xffffff:s=32x64:r=30:d=1,format=yuv420p",
        &[],
    );
    let stats = dir.path().join("stats.jsonl");
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "rgba", "--url"])
            .arg(&base)
            .arg("--layer")
            .arg(format!("{}:fit=contain", tall.display()))
            .args(["--layer", "/nonexistent/clip.mp4:opacity=0.5"])
            .arg("--stats-json")
            .arg(&stats),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    let frame = (W * H * 4) as usize;
    let last = &out.stdout[out.stdout.len() - frame..];
    let px = |x: u32, y: u32| {
        let at = ((y * W + x) * 4) as usize;
        [last[at], last[at + 1], last[at + 2]]
    };
    // 32x64 into 64x36: 18 wide, centred (23..41).
    assert_eq!(px(2, 18), [0, 0, 0], "left of the layer: the backdrop");
    assert_eq!(px(61, 18), [0, 0, 0], "right of the layer: the backdrop");
    for c in px(32, 18) {
        assert!(c >= 253, "the white layer in the middle: {:?}", px(32, 18));
    }
    let s = last_stats(&stats);
    assert_eq!(s["layers"][1]["state"], "failed", "{s}");
    assert!(
        s["layers"][1]["error"]
            .as_str()
            .unwrap()
            .contains("clip.mp4"),
        "{s}"
    );
    // Scaled to half and moved a quarter of the canvas right: the white layer is now
    // 9 pixels wide, centred at 32 + 16 = 48.
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "rgba", "--url"])
            .arg(&base)
            .arg("--layer")
            .arg(format!("{}:scale=0.5,x=0.25", tall.display())),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let last = &out.stdout[out.stdout.len() - frame..];
    let px = |x: u32, y: u32| {
        let at = ((y * W + x) * 4) as usize;
        [last[at], last[at + 1], last[at + 2]]
    };
    assert_eq!(px(32, 18), [0, 0, 0], "the old centre is the backdrop now");
    assert!(px(48, 18).iter().all(|c| *c >= 253), "{:?}", px(48, 18));
    assert_eq!(
        px(48, 2),
        [0, 0, 0],
        "half the height: above it, the backdrop"
    );
    // Bad layer options are a usage error before anything starts.
    let out = run_with_limit(
        lucid().args(["--no-preview", "--layer", "x.png:blend=glow"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 2, "blend=glow");
}

#[test]
fn a_25_fps_layer_over_30_fps_video_advances_at_its_own_rate() {
    // The layer covers the video, so each recorded frame shows the layer's marker; the
    // video's frame number is the recorded frame's place (offline: every frame, in order).
    let dir = tempfile::tempdir().unwrap();
    let base = marked_clip_at(
        &dir.path().join("base30.mp4"),
        30,
        320,
        180,
        2.0,
        &X264_FAST,
    );
    let layer = marked_clip_at(
        &dir.path().join("layer25.mp4"),
        25,
        320,
        180,
        2.0,
        &X264_FAST,
    );
    let record = dir.path().join("out.mkv");
    let stats = dir.path().join("stats.jsonl");
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--url"])
            .arg(&base)
            .arg("--layer")
            .arg(&layer)
            .arg("--record")
            .arg(&record)
            .arg("--stats-json")
            .arg(&stats),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (_, _, shown) = file_markers(&record);
    assert_eq!(shown.len(), 60, "every video frame recorded: {shown:?}");
    // Video frame n is at n/30 s; the layer's newest frame then is floor(n * 25 / 30).
    let want: Vec<u64> = (0..60u64).map(|n| n * 25 / 30).collect();
    assert_eq!(shown, want);
    let s = last_stats(&stats);
    assert_eq!(s["offline"], true, "{s}");
    assert_eq!(
        s["layers"][0]["shown"], 50,
        "each layer frame shown once: {s}"
    );
}

#[test]
fn a_timed_crossfade_moves_from_a_to_b_in_its_time_along_its_curve() {
    let dir = tempfile::tempdir().unwrap();
    let base = rgb_video(dir.path(), [0, 0, 0]);
    let red = dir.path().join("red.png");
    let blue = dir.path().join("blue.png");
    std::fs::rename(rgba_png(dir.path(), [255, 0, 0, 255]), &red).unwrap();
    std::fs::rename(rgba_png(dir.path(), [0, 0, 255, 255]), &blue).unwrap();
    for (curve, wa_wb) in [
        ("linear", (|x: f64| (1.0 - x, x)) as fn(f64) -> (f64, f64)),
        ("equal-power", |x: f64| {
            let a = x * std::f64::consts::FRAC_PI_2;
            (a.cos(), a.sin())
        }),
    ] {
        let frames = dir.path().join(curve);
        std::fs::create_dir(&frames).unwrap();
        let out = run_with_limit(
            lucid()
                .args(["--no-preview", "--url"])
                .arg(&base)
                .arg("--layer")
                .arg(format!("{}:bus=a", red.display()))
                .arg("--layer")
                .arg(format!("{}:bus=b", blue.display()))
                .args(["--crossfade", "0.5", "--crossfade-curve", curve])
                .arg("--output")
                .arg(frames.join("%d.png")),
            LIMIT,
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        // Image n + 1 is video frame n, at n/30 s: the fader is at min(n/15, 1).
        for n in [0u32, 3, 6, 8, 12, 15, 20, 29] {
            let rgb = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-i"])
                .arg(frames.join(format!("{}.png", n + 1)))
                .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
                .output()
                .unwrap()
                .stdout;
            let at = (((H / 2) * W + W / 2) * 3) as usize;
            let x = (f64::from(n) / 15.0).min(1.0);
            let (wa, wb) = wa_wb(x);
            // Red at wa over black, then blue at wb over that.
            let want_r = (1.0 - wb) * wa * 255.0;
            let want_b = wb * 255.0;
            let (r, b) = (f64::from(rgb[at]), f64::from(rgb[at + 2]));
            assert!(
                (r - want_r).abs() <= 1.5 && (b - want_b).abs() <= 1.5,
                "{curve} frame {n}: got r {r} b {b}, want r {want_r:.1} b {want_b:.1}"
            );
        }
    }
}

#[test]
fn a_scene_file_plays_like_its_flags_and_a_bad_one_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (backdrop, source) = (BACKDROP, SOURCE);
    let base = rgb_video(dir.path(), backdrop);
    let png = rgba_png(dir.path(), source);
    let scene = dir.path().join("show.ron");
    std::fs::write(
        &scene,
        format!(
            "(source: Some({:?}), layers: [(source: {:?}, blend: multiply, opacity: 0.5)])",
            base.display().to_string(),
            png.display().to_string()
        ),
    )
    .unwrap();
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "rgba", "--scene"])
            .arg(&scene),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let frame = (W * H * 4) as usize;
    let last = &out.stdout[out.stdout.len() - frame..];
    let at = (((H / 2) * W + W / 2) * 4) as usize;
    let want = expected("multiply", backdrop, source, 0.5);
    for i in 0..3 {
        assert!(
            (f64::from(last[at + i]) - want[i]).abs() <= 1.5,
            "channel {i}: {} vs {:.1}",
            last[at + i],
            want[i]
        );
    }
    std::fs::write(&scene, "(layers: [(source: \"a.png\", blend: glow)])").unwrap();
    let out = run_with_limit(
        lucid().arg("--no-preview").arg("--scene").arg(&scene),
        LIMIT,
    );
    assert_one_clear_error(&out, 2, "show.ron: 1:");
    let out = run_with_limit(
        lucid().args(["--no-preview", "--scene", "/nonexistent/show.ron"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 2, "cannot read scene /nonexistent/show.ron");
}

#[test]
fn a_layer_whose_origin_goes_away_is_reported_and_the_show_goes_on() {
    let live = LiveOrigin::start(OriginOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.jsonl");
    // The bottom layer is the built-in test pattern; the live HLS layer sits over it.
    let mut child = lucid()
        .args(["--no-preview", "--duration", "25", "--wait", "3"])
        .arg("--layer")
        .arg(format!("{}:opacity=0.5", live.master_url()))
        .arg("--stats-json")
        .arg(&stats)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect_stderr(&mut child);
    // The HLS client gives a lost origin --wait, retrying with backoff (0.5, 1, 2, 4 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let state = |s: &serde_json::Value| s["layers"][0]["state"].as_str().unwrap_or("").to_string();
    // Playing first...
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the layer never played"
        );
        if let Some(s) = newest_stats(&stats)
            && state(&s) == "playing"
            && s["layers"][0]["shown"].as_u64().unwrap_or(0) > 10
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // ...then its origin goes away: ffmpeg and the HTTP server both.
    drop(live);
    let presented_at_loss = newest_stats(&stats).unwrap()["presented"].as_u64().unwrap();
    let mut seen = Vec::new();
    let status = loop {
        if let Some(s) = newest_stats(&stats)
            && seen.last() != Some(&state(&s))
        {
            seen.push(state(&s));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "lucid did not end");
        std::thread::sleep(Duration::from_millis(100));
    };
    let err = err.join().unwrap();
    assert!(status.success(), "the show went on to its end:\n{err}");
    let last = last_stats(&stats);
    assert_eq!(state(&last), "failed", "{last}");
    assert!(last["layers"][0]["error"].is_string(), "{last}");
    assert!(
        seen.iter().any(|s| s == "stalled"),
        "stalled was reported before it failed: {seen:?}"
    );
    // The test pattern kept playing: about 30 frames a second after the loss.
    let after = last["presented"].as_u64().unwrap() - presented_at_loss;
    assert!(after > 150, "only {after} frames after the layer was lost");
}

#[test]
fn a_looping_layer_starts_again_seamlessly() {
    // A half-second layer (15 frames) over two seconds of video, offline: the layer's
    // frames go 0..14, 0..14, ... with no frame repeated or lost at the seams.
    let dir = tempfile::tempdir().unwrap();
    let base = marked_clip_at(&dir.path().join("base.mp4"), 30, 320, 180, 2.0, &X264_FAST);
    let short = marked_clip_at(&dir.path().join("short.mp4"), 30, 320, 180, 0.5, &X264_FAST);
    let record = dir.path().join("out.mkv");
    let stats = dir.path().join("stats.jsonl");
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--url"])
            .arg(&base)
            .arg("--layer")
            .arg(format!("{}:loop=true", short.display()))
            .arg("--record")
            .arg(&record)
            .arg("--stats-json")
            .arg(&stats),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let (_, _, shown) = file_markers(&record);
    let want: Vec<u64> = (0..60u64).map(|n| n % 15).collect();
    assert_eq!(shown, want);
    let s = last_stats(&stats);
    assert!(s["layers"][0]["loops"].as_u64().unwrap() >= 3, "{s}");
}

#[test]
fn fps_sets_the_output_rate_whatever_the_video_rate() {
    // 25 fps video, --fps 30, piped in real time: 30 frames a second come out, the header
    // says 30, and every video frame is shown, in order, repeated only as 25 into 30 needs.
    let dir = tempfile::tempdir().unwrap();
    let base = marked_clip_at(&dir.path().join("b25.mp4"), 25, 320, 180, 3.0, &X264_FAST);
    let stats = dir.path().join("stats.jsonl");
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "y4m", "--fps", "30", "--url"])
            .arg(&base)
            .arg("--stats-json")
            .arg(&stats),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let y4m = Y4m::parse(&out.stdout);
    assert_eq!(y4m.rate, "30:1");
    let markers = y4m.markers();
    // 3 s of video at 30 a second (the last tick is at the last frame's time).
    assert!(
        (85..=91).contains(&markers.len()),
        "{} frames",
        markers.len()
    );
    assert!(
        markers.windows(2).all(|w| w[1] >= w[0]),
        "in order: {markers:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = markers.iter().copied().collect();
    assert!(
        distinct.len() >= 72,
        "nearly every video frame shown: {markers:?}"
    );
    let longest = markers
        .chunk_by(|a, b| a == b)
        .map(|run| run.len())
        .max()
        .unwrap();
    assert!(
        longest <= 3,
        "a frame held for {longest} ticks: {markers:?}"
    );
    let s = last_stats(&stats);
    assert!(s["output_ticks_missed"].is_u64(), "{s}");
    // A bad rate is a usage error.
    let out = run_with_limit(lucid().args(["--no-preview", "--fps", "0"]), LIMIT);
    assert_one_clear_error(&out, 2, "--fps must be 1 to 240");
}

#[test]
fn a_layer_that_ends_with_end_fade_fades_out_over_a_second() {
    // A white still over a second of black video: the still ends after its one frame, and
    // with end=fade its opacity falls by 1/30 a frame, reaching nothing after one second.
    let dir = tempfile::tempdir().unwrap();
    let base = rgb_video(dir.path(), [0, 0, 0]);
    let white = rgba_png(dir.path(), [255, 255, 255, 255]);
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--url"])
            .arg(&base)
            .arg("--layer")
            .arg(format!("{}:end=fade", white.display()))
            .arg("--output")
            .arg(frames.join("%d.png")),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    for (n, want) in [(0u32, 255.0), (1, 246.5), (15, 127.5), (29, 8.5)] {
        let rgb = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-i"])
            .arg(frames.join(format!("{}.png", n + 1)))
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .unwrap()
            .stdout;
        let at = (((H / 2) * W + W / 2) * 3) as usize;
        let got = f64::from(rgb[at]);
        assert!(
            (got - want).abs() <= 1.5,
            "frame {n}: {got}, the fade says {want}"
        );
    }
}

#[test]
fn a_layer_runs_its_own_effects_before_it_is_placed_and_keeps_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    let base = rgb_video(dir.path(), BACKDROP);
    // White on the left half, transparent on the right.
    let half = lavfi_file(
        &dir.path().join("half.png"),
        &format!(
            "color=c=white:s={W}x{H},format=rgba,geq=r=255:g=255:b=255:a='if(lt(X,{}),255,0)'",
            W / 2
        ),
        &["-frames:v", "1"],
    );
    let run = |extra: &[&str]| {
        let stats = dir.path().join("stats.jsonl");
        let _ = std::fs::remove_file(&stats);
        let out = run_with_limit(
            lucid()
                .args(["--no-preview", "--pipe", "rgba", "--url"])
                .arg(&base)
                .arg("--stats-json")
                .arg(&stats)
                .args(extra),
            LIMIT,
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        let frame = (W * H * 4) as usize;
        let last = out.stdout[out.stdout.len() - frame..].to_vec();
        let px = move |x: u32, y: u32| {
            let at = ((y * W + x) * 4) as usize;
            [last[at], last[at + 1], last[at + 2]]
        };
        (px, last_stats(&stats))
    };
    let near = |got: [u8; 3], want: [u8; 3]| {
        got.iter()
            .zip(want)
            .all(|(g, w)| (i16::from(*g) - i16::from(w)).abs() <= 1)
    };
    let layer = half.display().to_string();
    // The tint (luma times red, at full amount) turns the layer's white red; its
    // transparent half still shows the untinted video: the effect ran on the layer alone
    // and the layer kept its alpha.
    let (px, stats) = run(&[
        "--layer",
        &layer,
        "--layer-effect",
        "1:tint:color=#ff0000,amount=1",
    ]);
    assert!(near(px(8, 18), [255, 0, 0]), "left: {:?}", px(8, 18));
    assert!(near(px(56, 18), BACKDROP), "right: {:?}", px(56, 18));
    assert!(
        stats["layers"][0]["pass_ms"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
    // A 4:2:0 layer too: its picture is converted to RGB for its effects.
    let yuv = lavfi_file(
        &dir.path().join("white.y4m"),
        &format!("color=c=0xffffff:s={W}x{H}:r=30:d=1,format=yuv420p"),
        &[],
    );
    let (px, _) = run(&[
        "--layer",
        yuv.to_str().unwrap(),
        "--layer-effect",
        "1:tint:color=#ff0000,amount=1",
    ]);
    assert!(near(px(56, 18), [255, 0, 0]), "4:2:0: {:?}", px(56, 18));
    // The same from a scene, with a mirror after the tint: the mirror works on the layer's
    // own picture, so the red half (and its alpha) is reflected onto the right.
    let scene = dir.path().join("scene.ron");
    std::fs::write(
        &scene,
        format!(
            "(layers: [(source: {layer:?}, effects: [\
             (effect: \"tint\", params: {{\"color\": (1.0, 0.0, 0.0, 1.0), \"amount\": 1.0}}),\
             (effect: \"mirror\")])])"
        ),
    )
    .unwrap();
    let (px, _) = run(&["--scene", scene.to_str().unwrap()]);
    assert!(near(px(8, 18), [255, 0, 0]), "left: {:?}", px(8, 18));
    assert!(near(px(56, 18), [255, 0, 0]), "right: {:?}", px(56, 18));
    // The master chain still runs on the composite: a tint to blue over all of it.
    let (px, _) = run(&[
        "--layer",
        &layer,
        "--layer-effect",
        "1:tint:color=#ff0000,amount=1",
        "--effect",
        "tint:color=#0000ff,amount=1",
    ]);
    let luma = |c: [u8; 3]| {
        (0.2126 * f64::from(c[0]) + 0.7152 * f64::from(c[1]) + 0.0722 * f64::from(c[2])).round()
            as u8
    };
    assert!(
        near(px(8, 18), [0, 0, luma([255, 0, 0])]),
        "{:?}",
        px(8, 18)
    );
    assert!(near(px(56, 18), [0, 0, luma(BACKDROP)]), "{:?}", px(56, 18));
    // Mistakes are usage errors before anything starts.
    for (args, says) in [
        (vec!["--layer-effect", "1:tint"], "there are no layers"),
        (
            vec!["--layer", &layer, "--layer-effect", "2:tint"],
            "'2' is not a layer: 1 to 1",
        ),
        (
            vec!["--layer", &layer, "--layer-effect", "1:glow"],
            "no effect 'glow'",
        ),
        (
            vec!["--layer", &layer, "--layer-effect", "1:tint:amount=7"],
            "outside",
        ),
    ] {
        let out = run_with_limit(lucid().arg("--no-preview").args(&args), LIMIT);
        assert_one_clear_error(&out, 2, says);
    }
}

#[test]
fn offline_renders_tick_at_fps_or_at_the_fastest_layer() {
    let dir = tempfile::tempdir().unwrap();
    let video = marked_clip_at(
        &dir.path().join("video25.mp4"),
        25,
        320,
        180,
        2.0,
        &X264_FAST,
    );
    let render = |name: &str, extra: &[&str]| {
        let record = dir.path().join(name);
        let stats = dir.path().join(format!("{name}.jsonl"));
        let out = run_with_limit(
            lucid()
                .args(["--no-preview", "--url"])
                .arg(&video)
                .arg("--record")
                .arg(&record)
                .arg("--stats-json")
                .arg(&stats)
                .args(extra),
            LIMIT,
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        (file_markers(&record).2, last_stats(&stats))
    };
    // --fps 30 over 25 fps video into a file renders offline, on the video's time: tick n
    // (at n/30 s) shows the newest frame due by then, the last tick the last frame.
    let (shown, s) = render("fps.mkv", &["--fps", "30"]);
    let want: Vec<u64> = (0..60u64).map(|n| n * 25 / 30).collect();
    assert_eq!(shown, want);
    assert_eq!(s["offline"], true, "{s}");
    assert_eq!(s["output_ticks_missed"], 0, "{s}");
    assert!(
        (s["output_fps"].as_f64().unwrap() - 30.0).abs() < 1e-6,
        "{s}"
    );
    // Without --fps, a 30 fps layer over it sets the rate: each of its frames is shown
    // once (the layer covers the video).
    let layer = marked_clip_at(
        &dir.path().join("layer30.mp4"),
        30,
        320,
        180,
        2.0,
        &X264_FAST,
    );
    let (shown, s) = render("fastest.mkv", &["--layer", layer.to_str().unwrap()]);
    assert_eq!(shown, (0..60u64).collect::<Vec<_>>());
    assert_eq!(s["layers"][0]["shown"], 60, "{s}");
    assert!(
        (s["output_fps"].as_f64().unwrap() - 30.0).abs() < 1e-6,
        "{s}"
    );
    // A slower layer leaves the video's pace alone.
    let (shown, s) = render("slower.mkv", &["--layer", video.to_str().unwrap()]);
    assert_eq!(shown, (0..50u64).collect::<Vec<_>>());
    assert!(s["output_fps"].is_null(), "{s}");
}

#[test]
fn two_live_sources_at_25_and_30_fps_each_advance_at_their_own_rate() {
    // Two live HLS origins (the real ffmpeg CLI in real time, over 127.0.0.1): the video at
    // 30 fps, a layer at 25 fps moved down half the canvas, so the video's frame number
    // shows in the top rows and the layer's in the middle. Composited at --fps 30.
    let small = OriginOptions {
        width: W * 5,
        height: H * 5,
        ..OriginOptions::default()
    };
    let video = LiveOrigin::start(small.clone());
    let layer = LiveOrigin::start(OriginOptions { fps: 25, ..small });
    let out = run_with_limit(
        lucid()
            .args([
                "--no-preview",
                "--pipe",
                "y4m",
                "--fps",
                "30",
                "--duration",
                "10",
            ])
            .arg("--url")
            .arg(video.master_url())
            .arg("--layer")
            .arg(format!("{}:y=0.5", layer.master_url())),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let y4m = Y4m::parse(&out.stdout);
    assert_eq!(y4m.rate, "30:1");
    let (w, h) = (y4m.width as usize, y4m.height as usize);
    let layer_top = h / 2;
    let layer_marks: Vec<u64> = y4m
        .frames
        .iter()
        .map(|f| read_marker(&f[layer_top * w..], w, w as u32, h as u32))
        .collect();
    // The layer shows once it has opened and buffered its first segment (live layers play
    // a segment and a half behind): from the first of ten frames that read as its
    // counter, advancing (the video's picture is there before).
    let shown = layer_marks
        .windows(10)
        .position(|run| {
            run.windows(2).all(|p| p[1] >= p[0] && p[1] - p[0] <= 2) && run[9] - run[0] >= 5
        })
        .expect("the layer never showed");
    assert!(shown <= 150, "the layer took {shown} ticks to show");
    // Its first half second is left out: the first frame can stay up a few ticks while its
    // textures are made (seen: 4 ticks, then two frames skipped).
    let steady = shown + 15..y4m.frames.len();
    assert!(
        steady.len() >= 120,
        "{} frames with the layer",
        steady.len()
    );
    let video_marks: Vec<u64> = y4m.frames[steady.clone()]
        .iter()
        .map(|f| read_marker(f, w, w as u32, h as u32))
        .collect();
    let layer_marks = &layer_marks[steady];
    let check = |name: &str, marks: &[u64], rate: f64| {
        assert!(
            marks.windows(2).all(|p| p[1] >= p[0]),
            "{name}: in order: {marks:?}"
        );
        // Advancing at its own rate: as many distinct frames as it makes in that time,
        // within a tenth (a loaded machine misses a few ticks).
        let distinct = marks.windows(2).filter(|p| p[1] != p[0]).count() + 1;
        let want = marks.len() as f64 * rate / 30.0;
        assert!(
            (distinct as f64 - want).abs() <= want * 0.1,
            "{name}: {distinct} distinct frames in {} ticks, want about {want:.0}: {marks:?}",
            marks.len()
        );
        // Smooth: a frame stays up for the ticks its source leaves it there, no longer
        // (one tick in five of a 25 fps source shows a frame a second time).
        let longest = marks
            .chunk_by(|a, b| a == b)
            .map(<[u64]>::len)
            .max()
            .unwrap();
        assert!(
            longest <= 3,
            "{name}: a frame held {longest} ticks: {marks:?}"
        );
    };
    check("video (30 fps)", &video_marks, 30.0);
    check("layer (25 fps)", layer_marks, 25.0);
}
