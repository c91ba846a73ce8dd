//! End to end: live HLS from a real ffmpeg origin over HTTP on 127.0.0.1, real decoding,
//! real Vulkan rendering (lavapipe in CI), real outputs read back with ffmpeg-next.

mod support;

use std::time::Duration;

use support::*;

const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn record_picks_highest_rendition_and_keeps_every_frame_in_order() {
    let live = LiveOrigin::start(OriginOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let file = temp_path(&dir, "out.mp4");
    let out = run_with_limit(
        lucid()
            .args([
                "--url",
                &live.master_url(),
                "--no-preview",
                "--duration",
                "3",
                "--record",
            ])
            .arg(&file),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "stderr:\n{err}");
    assert!(
        err.contains("rendition: 640x360"),
        "the 640x360 rendition is chosen over 320x180:\n{err}"
    );
    let (w, h, markers) = file_markers(&file);
    // No --width/--height: the stream's own size, which is the high rendition's.
    assert_eq!((w, h), (640, 360));
    let gaps = assert_in_order(&markers);
    // Three seconds at 30 fps, paced: about 90 frames, not a burst and not a trickle.
    assert!(
        (80..=95).contains(&markers.len()),
        "{} frames: {markers:?}",
        markers.len()
    );
    assert!(gaps <= 3, "{gaps} frames skipped: {markers:?}");
    assert!(
        err.contains("1 texture set(s) allocated"),
        "textures are reused, not made per frame:\n{err}"
    );
    assert!(!err.contains("internal error"), "{err}");
}

#[test]
fn pipe_y4m_carries_markers_in_order_at_the_requested_size() {
    let live = LiveOrigin::start(OriginOptions::default());
    let out = run_with_limit(
        lucid().args([
            "--url",
            &live.master_url(),
            "--no-preview",
            "--duration",
            "2",
            "--pipe",
            "y4m",
            "--height",
            "180",
            "--force-cpu",
        ]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "stderr:\n{err}");
    let y4m = Y4m::parse(&out.stdout);
    // --height alone keeps the 16:9 aspect ratio.
    assert_eq!((y4m.width, y4m.height), (320, 180));
    assert_eq!(y4m.rate, "30:1");
    assert!(
        err.contains("decoder: h264 (software; no hardware decode: --force-cpu)"),
        "{err}"
    );
    let markers = y4m.markers();
    assert_in_order(&markers);
    assert!(
        markers[0] >= 30,
        "the first frame is video from the live edge, not black: {markers:?}"
    );
    assert!(
        (50..=65).contains(&markers.len()),
        "{} frames",
        markers.len()
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout[..200]).contains("INFO"),
        "logs never reach stdout"
    );
}

#[test]
fn vod_plays_to_the_end_and_exits_zero() {
    let vod = LiveOrigin::start(OriginOptions {
        vod_seconds: Some(3.0),
        ..OriginOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = temp_path(&dir, "vod.mkv");
    let out = run_with_limit(
        lucid()
            .args(["--url", &vod.master_url(), "--no-preview", "--record"])
            .arg(&file),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{err}");
    assert!(err.contains("end of stream"), "{err}");
    let (_, _, markers) = file_markers(&file);
    assert_in_order(&markers);
    // A VOD starts at its first segment and ends at its last frame.
    assert_eq!(markers.first(), Some(&0), "{markers:?}");
    assert_eq!(markers.last(), Some(&89), "{markers:?}");
    assert!(markers.len() >= 85, "{} of 90 frames", markers.len());
}

#[test]
fn status_line_and_stats_json_report_live_playback() {
    let live = LiveOrigin::start(OriginOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let stats = temp_path(&dir, "stats.jsonl");
    let out = run_with_limit(
        lucid()
            .args([
                "--url",
                &live.master_url(),
                "--no-preview",
                "--duration",
                "4",
            ])
            .arg("--stats-json")
            .arg(&stats),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "stderr:\n{err}");
    assert!(
        err.contains("status: hls | playing | 640x360 (640x360"),
        "{err}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert!(
        (4..=7).contains(&lines.len()),
        "about one a second: {lines:?}"
    );
    let steady = &lines[2];
    assert_eq!(steady["state"], "playing");
    assert_eq!(steady["protocol"], "hls");
    assert!(steady["protocol_why"].is_null());
    assert!(steady["webrtc"].is_null());
    let fps = steady["fps"].as_f64().unwrap();
    assert!((25.0..=35.0).contains(&fps), "fps {fps}");
    let latency = steady["latency_s"]
        .as_f64()
        .expect("live HLS reports latency");
    assert!((0.5..=4.0).contains(&latency), "latency {latency}");
    assert_eq!(
        steady["latency_target_s"].as_f64(),
        Some(1.5),
        "1 s segments + 0.5 s"
    );
    assert!(steady["decoder"].as_str().unwrap().starts_with("h264"));
    assert_eq!(lines.last().unwrap()["state"], "ended");
}

#[test]
fn fmp4_segments_play() {
    let vod = LiveOrigin::start(OriginOptions {
        vod_seconds: Some(2.0),
        fmp4: true,
        ..OriginOptions::default()
    });
    let media = std::fs::read_to_string(vod.dir.path().join("high.m3u8")).unwrap();
    assert!(
        media.contains("#EXT-X-MAP"),
        "the fixture really is fMP4:\n{media}"
    );
    let out = run_with_limit(
        lucid().args(["--url", &vod.master_url(), "--no-preview", "--pipe", "y4m"]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "stderr:\n{err}");
    let markers = Y4m::parse(&out.stdout).markers();
    assert_in_order(&markers);
    assert_eq!(
        (markers[0], *markers.last().unwrap()),
        (0, 59),
        "{markers:?}"
    );
}

#[test]
fn redirects_are_followed_and_tokens_kept() {
    let live = LiveOrigin::start(OriginOptions::default());
    // A CDN-style entry point: 307 to another path, and a master whose variant URIs carry
    // access tokens, relative to where the redirect landed.
    live.origin.fault(
        "entry/index.m3u8",
        Fault::Redirect("/cdn/master.m3u8?session=1".into()),
    );
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=300000,RESOLUTION=320x180\n../low.m3u8?tkn=abc\n\
                  #EXT-X-STREAM-INF:BANDWIDTH=1500000,RESOLUTION=640x360\n../high.m3u8?tkn=abc\n";
    live.origin.fault(
        "cdn/master.m3u8",
        Fault::Body("application/vnd.apple.mpegurl", master.as_bytes().to_vec()),
    );
    let out = run_with_limit(
        lucid().args([
            "--url",
            &live.origin.url("entry/index.m3u8"),
            "--no-preview",
            "--duration",
            "1",
            "--pipe",
            "y4m",
        ]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "stderr:\n{err}");
    assert!(!Y4m::parse(&out.stdout).frames.is_empty());
    let requests = live.origin.requests.lock().unwrap().clone();
    assert!(
        requests.contains(&"/cdn/master.m3u8?session=1".to_string()),
        "{requests:?}"
    );
    assert!(
        requests.contains(&"/high.m3u8?tkn=abc".to_string()),
        "token kept: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("/high_") && r.ends_with(".ts")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.starts_with("/low")),
        "low rendition untouched: {requests:?}"
    );
}

#[test]
fn sigint_finalizes_the_recording() {
    stop_by_signal_finalizes_the_recording("INT");
}

#[test]
fn sigterm_finalizes_the_recording() {
    stop_by_signal_finalizes_the_recording("TERM");
}

fn stop_by_signal_finalizes_the_recording(signal: &str) {
    let live = LiveOrigin::start(OriginOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let file = temp_path(&dir, "stopped.mp4");
    let mut child = lucid()
        .args(["--url", &live.master_url(), "--no-preview", "--record"])
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    std::thread::sleep(Duration::from_secs(5));
    send_signal(child.id(), signal);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "lucid did not stop after signal {signal}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
    let shown = err
        .lines()
        .find_map(|l| l.split("recording finalized: ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no finalize line:\n{err}"));
    let (w, h, markers) = file_markers(&file);
    assert_eq!((w, h), (640, 360));
    assert_in_order(&markers);
    assert_eq!(
        markers.len(),
        shown,
        "every recorded frame is in the finalized file"
    );
    assert!(
        markers.len() >= 30,
        "{} frames after ~4 s of playback",
        markers.len()
    );
}

#[test]
fn test_pattern_plays_without_a_url() {
    let out = run_with_limit(
        lucid().args([
            "--no-preview",
            "--duration",
            "1",
            "--pipe",
            "y4m",
            "--width",
            "320",
        ]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "stderr:\n{err}");
    assert!(err.contains("source: test pattern"), "{err}");
    let y4m = Y4m::parse(&out.stdout);
    assert_eq!((y4m.width, y4m.height), (320, 180));
    assert!(y4m.frames.len() >= 25, "{} frames", y4m.frames.len());
    // It moves: consecutive frames differ, and a frame is not one flat colour.
    let (a, b) = (&y4m.frames[0], &y4m.frames[10]);
    assert!(a.iter().zip(b).filter(|(x, y)| x != y).count() > 1000);
    let min = a[..320 * 180].iter().min().unwrap();
    let max = a[..320 * 180].iter().max().unwrap();
    assert!(max - min > 100, "luma range {min}..{max}");
}
