//! Render to file (issue 13): a finite input into files only renders every frame, in
//! order, whatever the machine's speed; the same input renders the same frames twice;
//! `--realtime` keeps real-time pacing, reporting the frames it had to skip; and the
//! encoders' YUV, converted on the GPU or copied from the video when the canvas has nothing
//! to do, keeps the picture's samples.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

const LIMIT: Duration = Duration::from_secs(240);

/// A marked clip of `seconds` at 30 fps, made by the ffmpeg CLI.
fn clip(dir: &Path, width: u32, height: u32, seconds: f64) -> PathBuf {
    marked_clip(dir, width, height, seconds, "mp4", &X264_FAST)
}

/// Renders `input` into `out` headless; returns the last stats line and stderr.
fn render(input: &Path, out: &Path, extra: &[&str]) -> (serde_json::Value, String) {
    let stats = out.with_extension("stats.jsonl");
    let run = run_with_limit(
        lucid()
            .arg("--no-preview")
            .arg("--url")
            .arg(input)
            .arg("--record")
            .arg(out)
            .arg("--stats-json")
            .arg(&stats)
            .args(extra),
        LIMIT,
    );
    let err = stderr_of(&run);
    assert!(run.status.success(), "{err}");
    (last_stats(&stats), err)
}

#[test]
fn a_finite_1080p_clip_renders_every_frame_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 1920, 1080, 3.0);
    let out = dir.path().join("out.mkv");
    let (stats, err) = render(&input, &out, &[]);
    assert_eq!(stats["offline"], true, "{stats}");
    assert_eq!(stats["skipped"], 0, "{stats}");
    assert_eq!(stats["presented"], 90, "{stats}");
    assert_eq!(stats["outputs"]["record"]["dropped"], 0, "{stats}");
    // Progress, in the stats and as plain status lines (stderr is not a terminal here).
    let percent = stats["progress"]["percent"].as_f64().unwrap();
    assert!((95.0..=100.0).contains(&percent), "{stats}");
    assert!(
        stats["progress"]["speed"].as_f64().unwrap() > 0.0,
        "{stats}"
    );
    assert!(err.contains("status: render "), "{err}");
    let (w, h, markers) = file_markers(&out);
    assert_eq!((w, h), (1920, 1080));
    assert_eq!(markers, (0..90).collect::<Vec<u64>>(), "{err}");
}

#[test]
fn the_same_input_and_preset_render_the_same_frames_twice() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 640, 360, 2.0);
    let chain = [
        "--effect",
        "color:saturation=1.6,hue=40",
        "--effect",
        "feedback",
    ];
    let frames = |name: &str| {
        let out = dir.path().join(name);
        render(&input, &out, &chain);
        let mut frames = Vec::new();
        decode_file(&out, |f| {
            frames.push(f.data(0)[..f.stride(0) * 360].to_vec())
        });
        frames
    };
    let (a, b) = (frames("a.mkv"), frames("b.mkv"));
    assert_eq!(a.len(), 60);
    assert!(a == b, "two renders of the same input differ");
}

#[test]
fn realtime_pacing_reports_the_frames_it_skips() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 1920, 1080, 3.0);
    let out = dir.path().join("out.mkv");
    // A wide blur at 1080p costs far more than a frame period on a software rasterizer:
    // real-time pacing must skip.
    let (stats, err) = render(&input, &out, &["--realtime", "--effect", "blur:radius=8"]);
    assert_eq!(stats["offline"], false, "{stats}");
    let skipped = stats["skipped"].as_u64().unwrap();
    let presented = stats["presented"].as_u64().unwrap();
    assert!(skipped > 0, "this renderer keeps up in real time? {stats}");
    assert!(
        err.contains(&format!("{skipped} frame(s) were skipped")),
        "the skips are said at the end: {err}"
    );
    let (_, _, markers) = file_markers(&out);
    assert_eq!(markers.len() as u64, presented);
    assert_in_order(&markers);
}

/// A lossless YUV4MPEG2 clip (no colour tags) of the marked source.
fn y4m_clip(dir: &Path, width: u32, height: u32, seconds: f64) -> PathBuf {
    marked_clip(dir, width, height, seconds, "y4m", &["-f", "yuv4mpegpipe"])
}

/// One solid colour (`0xRRGGBB`), as a lossless YUV4MPEG2 clip of `frames` frames.
fn solid_clip(dir: &Path, color: &str, width: u32, height: u32, frames: u32) -> PathBuf {
    let path = dir.join(format!("solid-{width}x{height}.y4m"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("color=c={color}:s={width}x{height}:r=30"))
        .args(["-frames:v", &frames.to_string(), "-pix_fmt", "yuv420p"])
        .args(["-f", "yuv4mpegpipe"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

/// Plays `input` headless into `--pipe y4m`; returns the frames and the last stats line.
fn pipe_y4m(input: &Path, extra: &[&str]) -> (Y4m, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.jsonl");
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "y4m", "--url"])
            .arg(input)
            .arg("--stats-json")
            .arg(&stats)
            .args(extra),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    (Y4m::parse(&out.stdout), last_stats(&stats))
}

/// The Y, Cb and Cr sample at (x, y) of a 4:2:0 frame.
fn yuv_at(y4m: &Y4m, frame: &[u8], x: usize, y: usize) -> [u8; 3] {
    let (w, h) = (y4m.width as usize, y4m.height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let c = (y / 2) * cw + x / 2;
    [
        frame[y * w + x],
        frame[w * h + c],
        frame[w * h + cw * ch + c],
    ]
}

#[test]
fn with_nothing_to_do_the_encoders_get_the_decoded_samples_exactly() {
    // SD and HD: each is in the matrix Lucid's outputs use for its size (BT.601 / BT.709),
    // so the canvas would only pass the video through, and no pass runs at all.
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(320, 180), (1280, 720)] {
        let input = y4m_clip(dir.path(), w, h, 1.0);
        let source = Y4m::parse(&std::fs::read(&input).unwrap());
        let (out, stats) = pipe_y4m(&input, &[]);
        assert_eq!((out.width, out.height), (w, h));
        assert!(out.frames.len() >= 15, "{stats}");
        // Bit-exact: a trip through the RGB canvas would round many samples.
        for (frame, marker) in out.frames.iter().zip(out.markers()) {
            let original = &source.frames[marker as usize];
            assert!(
                frame == original,
                "{w}x{h} frame {marker} differs from the source"
            );
        }
    }
}

#[test]
fn colours_survive_the_canvas_and_the_gpu_yuv_conversion() {
    // Through an effect that changes nothing, the picture goes YUV -> RGB canvas -> YUV on
    // the GPU. A colour inside the RGB cube comes back within rounding, in SD (BT.601) and
    // HD (BT.709) alike.
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(320, 180), (1280, 720)] {
        let input = solid_clip(dir.path(), "0x3366cc", w, h, 10);
        let source = Y4m::parse(&std::fs::read(&input).unwrap());
        let (out, stats) = pipe_y4m(&input, &["--effect", "color"]);
        assert!(stats["video_pass_ms"].is_number(), "{stats}");
        assert!(!out.frames.is_empty());
        let want = yuv_at(&source, &source.frames[0], w as usize / 2, h as usize / 2);
        for frame in &out.frames {
            for (x, y) in [
                (0, 0),
                (w as usize / 2, h as usize / 2),
                (w as usize - 1, h as usize - 1),
            ] {
                let got = yuv_at(&out, frame, x, y);
                for c in 0..3 {
                    assert!(
                        got[c].abs_diff(want[c]) <= 2,
                        "{w}x{h} at ({x},{y}): {got:?}, the source has {want:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn letterbox_bars_are_black_in_the_encoded_picture() {
    // 16:9 into 4:3: bars above and below, video black (16, 128, 128) in limited range.
    let dir = tempfile::tempdir().unwrap();
    let input = solid_clip(dir.path(), "0x3366cc", 320, 180, 10);
    let source = Y4m::parse(&std::fs::read(&input).unwrap());
    let (out, _) = pipe_y4m(&input, &["--width", "320", "--height", "240"]);
    assert_eq!((out.width, out.height), (320, 240));
    let want = yuv_at(&source, &source.frames[0], 160, 90);
    let frame = out.frames.last().expect("frames");
    for (x, y) in [(0, 0), (160, 10), (319, 239)] {
        assert_eq!(
            yuv_at(&out, frame, x, y),
            [16, 128, 128],
            "bar at ({x},{y})"
        );
    }
    let got = yuv_at(&out, frame, 160, 120);
    for c in 0..3 {
        assert!(got[c].abs_diff(want[c]) <= 2, "{got:?} vs {want:?}");
    }
}

#[test]
fn a_finished_hls_vod_into_a_file_renders_offline() {
    // A VOD playlist (ENDLIST) is a finite input: every frame, as fast as it downloads.
    let vod = LiveOrigin::start(OriginOptions {
        vod_seconds: Some(3.0),
        ..OriginOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mkv");
    let (stats, err) = render(Path::new(&vod.master_url()), &out, &[]);
    assert_eq!(stats["offline"], true, "{stats}");
    assert_eq!(stats["skipped"], 0, "{stats}");
    assert_eq!(stats["presented"], 90, "{stats}");
    let (_, _, markers) = file_markers(&out);
    assert_eq!(markers, (0..90).collect::<Vec<u64>>(), "{err}");
}

/// A one-colour PNG made by the ffmpeg CLI, generated in RGB (`format=` before the PNG
/// encoder, so no Y'CbCr step touches the values).
fn flat_png(dir: &Path, color: &str, format: &str, w: u32, h: u32) -> PathBuf {
    let png = dir.join(format!("flat-{w}x{h}-{format}.png"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("color=c={color}:s={w}x{h},format={format}"))
        .args(["-frames:v", "1"])
        .arg(&png)
        .status()
        .unwrap();
    assert!(status.success());
    png
}

/// The first frame Lucid pipes as RGBA for `input`.
fn first_rgba_frame(input: &Path, w: u32, h: u32) -> Vec<u8> {
    let out = run_with_limit(
        lucid()
            .args([
                "--no-preview",
                "--pipe",
                "rgba",
                "--duration",
                "0.5",
                "--url",
            ])
            .arg(input),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    out.stdout[..(w * h * 4) as usize].to_vec()
}

#[test]
fn an_rgb_picture_keeps_its_colour_and_its_alpha() {
    // RGB stays RGB: before, a PNG went through 4:2:0 read back with the wrong range, and
    // (51,102,204) came out as (57,103,191) at 320x180 and (52,103,195) at 720p.
    let dir = tempfile::tempdir().unwrap();
    for (w, h) in [(320, 180), (1280, 720)] {
        let frame = first_rgba_frame(&flat_png(dir.path(), "0x3366cc", "rgb24", w, h), w, h);
        for px in [0, (w * h / 2 + w / 2) as usize, (w * h - 1) as usize] {
            assert_eq!(
                &frame[px * 4..px * 4 + 4],
                &[51, 102, 204, 255],
                "{w}x{h} pixel {px}"
            );
        }
    }
    // Half-transparent orange, alone on the canvas: over black.
    let frame = first_rgba_frame(
        &flat_png(dir.path(), "0xff8000@0.5", "rgba", 320, 180),
        320,
        180,
    );
    let got = &frame[..3];
    for (c, want) in [127u8, 64, 0].into_iter().enumerate() {
        assert!(
            got[c].abs_diff(want) <= 1,
            "{got:?}: orange at half alpha over black"
        );
    }
}

#[test]
fn an_image_sequence_holds_every_frame_numbered_as_ffmpeg_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let input = clip(dir.path(), 320, 180, 2.0);
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    let pattern = frames.join("f_%04d.png");
    let stats = dir.path().join("stats.jsonl");
    let run = |extra: &[&str]| {
        run_with_limit(
            lucid()
                .args(["--no-preview", "--url"])
                .arg(&input)
                .arg("--output")
                .arg(&pattern)
                .arg("--stats-json")
                .arg(&stats)
                .args(extra),
            LIMIT,
        )
    };
    let out = run(&[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let last = last_stats(&stats);
    assert_eq!(last["offline"], true, "files only: every frame: {last}");
    let mut names: Vec<String> = std::fs::read_dir(&frames)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    let expected: Vec<String> = (1..=60).map(|n| format!("f_{n:04}.png")).collect();
    assert_eq!(names, expected);
    // Each image is the frame its number says: image n holds marker n - 1.
    for (i, name) in names.iter().enumerate().step_by(7) {
        let gray = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-i"])
            .arg(frames.join(name))
            .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .unwrap();
        assert_eq!(read_marker(&gray.stdout, 320, 320, 180), i as u64, "{name}");
    }
    // Again without --overwrite: refused before anything is written, nothing touched.
    let before = std::fs::metadata(frames.join("f_0001.png"))
        .unwrap()
        .modified()
        .unwrap();
    assert_one_clear_error(&run(&[]), 7, "pass --overwrite");
    let after = std::fs::metadata(frames.join("f_0001.png"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    // A JPEG sequence: the same count and names, each image the frame its number says,
    // and the colours of the PNG within JPEG's loss.
    let jpegs = dir.path().join("jpegs");
    std::fs::create_dir(&jpegs).unwrap();
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--url"])
            .arg(&input)
            .arg("--output")
            .arg(jpegs.join("j_%d.jpg")),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut names: Vec<String> = std::fs::read_dir(&jpegs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort_by_key(|n| n[2..n.len() - 4].parse::<u32>().unwrap());
    let expected: Vec<String> = (1..=60).map(|n| format!("j_{n}.jpg")).collect();
    assert_eq!(names, expected);
    let rgb = |path: &Path| {
        Command::new("ffmpeg")
            .args(["-loglevel", "error", "-i"])
            .arg(path)
            .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .unwrap()
            .stdout
    };
    for n in [1, 30, 60] {
        let (png, jpg) = (
            rgb(&frames.join(format!("f_{n:04}.png"))),
            rgb(&jpegs.join(format!("j_{n}.jpg"))),
        );
        assert_eq!(png.len(), jpg.len());
        // Below the marker strip, where testsrc2 has flat colour areas.
        let mean_error = png[320 * 3 * 40..]
            .iter()
            .zip(&jpg[320 * 3 * 40..])
            .map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs())
            .sum::<f64>()
            / (png.len() - 320 * 3 * 40) as f64;
        assert!(mean_error < 4.0, "frame {n}: mean error {mean_error:.2}");
        let gray = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-i"])
            .arg(jpegs.join(format!("j_{n}.jpg")))
            .args(["-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .unwrap();
        assert_eq!(read_marker(&gray.stdout, 320, 320, 180), n - 1, "j_{n}.jpg");
    }
}

#[test]
fn effects_get_the_beat_at_the_shows_tempo() {
    // A user effect paints fract(beat / 8) as red in the lower half. On a file the beat
    // counts stream time, so frame n at 30 fps and --bpm 120 is beat n / 15.
    let dir = tempfile::tempdir().unwrap();
    let effects = dir.path().join("effects");
    std::fs::create_dir(&effects).unwrap();
    std::fs::write(
        effects.join("beatbar.wgsl"),
        "/*{ \"description\": \"the beat as red\", \"params\": [] }*/\n\
         fn effect(uv: vec2<f32>) -> vec4<f32> {\n\
             if uv.y > 0.5 {\n\
                 return vec4(fract(lucid.beat / 8.0), 0.0, 0.0, 1.0);\n\
             }\n\
             return input_color(uv);\n\
         }\n",
    )
    .unwrap();
    let input = y4m_clip(dir.path(), 320, 180, 2.0);
    let out = run_with_limit(
        lucid()
            .args([
                "--no-preview",
                "--pipe",
                "rgba",
                "--bpm",
                "120",
                "--effect",
                "beatbar",
            ])
            .arg("--effects-dir")
            .arg(&effects)
            .arg("--url")
            .arg(&input),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let frame_bytes = 320 * 180 * 4;
    let frames: Vec<&[u8]> = out.stdout.chunks_exact(frame_bytes).collect();
    assert!(frames.len() >= 30, "{} frames", frames.len());
    let mut checked = 0;
    for frame in frames {
        let green: Vec<u8> = frame.chunks_exact(4).map(|p| p[1]).collect();
        let n = read_marker(&green, 320, 320, 180);
        let want = ((n as f64 / 120.0).fract() * 255.0).round() as u8;
        let red = frame[(135 * 320 + 160) * 4];
        assert!(
            red.abs_diff(want) <= 2,
            "frame {n}: red {red}, beat says {want}"
        );
        checked += 1;
    }
    assert!(checked >= 30);
    // Out of range is one clear error.
    let out = run_with_limit(lucid().args(["--no-preview", "--bpm", "1000"]), LIMIT);
    assert_one_clear_error(&out, 2, "--bpm");
}
