//! Render to file (issue 13): a finite input into files only renders every frame, in
//! order, whatever the machine's speed; the same input renders the same frames twice; and
//! `--realtime` keeps real-time pacing, reporting the frames it had to skip.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::*;

const LIMIT: Duration = Duration::from_secs(240);

/// A marked clip of `seconds` at 30 fps, made by the ffmpeg CLI.
fn clip(dir: &Path, width: u32, height: u32, seconds: f64) -> PathBuf {
    let path = dir.join(format!("clip-{width}x{height}.mp4"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(marked_source_args(width, height, Some(seconds)))
        .args(["-map", "[hi]", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-crf", "12", "-g", "30"])
        .arg(&path)
        .args(["-map", "[lo]", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(status.success());
    path
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
