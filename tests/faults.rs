//! Faults that real Livepeer and Daydream streams produce, injected by a scripted origin
//! on 127.0.0.1: Lucid rides through each one and plays on to the end of the stream.

mod support;

use std::time::Duration;

use support::scripted::{Entry, ScriptedOrigin, SegmentFault, make_segments};
use support::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Ten 1 s segments at 640x360: frames 0..=299. Lucid joins at the newest of the three
/// segments published at start (frame 60).
fn bank(dir: &tempfile::TempDir) -> Vec<Entry> {
    make_segments(dir.path(), "a", 0, 640, 360, 10)
}

fn play(origin: &ScriptedOrigin) -> (std::process::Output, Y4m, String) {
    let out = run_with_limit(
        lucid().args([
            "--url",
            &origin.master_url(),
            "--no-preview",
            "--pipe",
            "y4m",
        ]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{err}");
    let y4m = Y4m::parse(&out.stdout);
    (out, y4m, err)
}

#[test]
fn transient_http_errors_are_retried_without_losing_frames() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = bank(&dir);
    entries[4].fault = SegmentFault::FailTimes(500, 1);
    entries[5].fault = SegmentFault::FailTimes(503, 2);
    let origin = ScriptedOrigin::start(entries);
    origin.fail_playlists(&[503]);
    let (_, y4m, err) = play(&origin);
    let markers = y4m.markers();
    assert_eq!(
        assert_in_order(&markers),
        0,
        "no frame lost: {markers:?}\n{err}"
    );
    assert_eq!(
        (markers[0], *markers.last().unwrap()),
        (60, 299),
        "{markers:?}"
    );
    assert!(err.contains("retrying"), "{err}");
    let log = origin.log();
    assert_eq!(
        log.iter().filter(|l| l.contains("-5.ts")).count(),
        3,
        "{log:?}"
    );
}

#[test]
fn a_segment_that_keeps_failing_is_skipped_and_playback_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = bank(&dir);
    entries[4].fault = SegmentFault::Always(404);
    let origin = ScriptedOrigin::start(entries);
    let (_, y4m, err) = play(&origin);
    let markers = y4m.markers();
    assert_in_order(&markers);
    assert!(
        !markers.iter().any(|m| (120..150).contains(m)),
        "segment 4 cannot appear"
    );
    let expected: Vec<u64> = (60..120).chain(150..300).collect();
    assert_eq!(markers, expected, "everything else plays, in order");
    assert!(err.contains("skipping segment 4"), "{err}");
}

#[test]
fn damaged_segments_do_not_stop_playback() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = bank(&dir);
    entries[4].fault = SegmentFault::Truncate(0.4);
    entries[6].fault = SegmentFault::Garbage;
    let origin = ScriptedOrigin::start(entries);
    let (_, y4m, _) = play(&origin);
    let markers = y4m.markers();
    // Damaged frames may show anything; the frames around them must be exact.
    let before: Vec<u64> = markers
        .iter()
        .copied()
        .filter(|m| (60..120).contains(m))
        .collect();
    let after: Vec<u64> = markers
        .iter()
        .copied()
        .filter(|m| (210..300).contains(m))
        .collect();
    assert_eq!(before, (60..120).collect::<Vec<_>>());
    assert_eq!(
        after,
        (210..300).collect::<Vec<_>>(),
        "the decoder resynced after the damage"
    );
    assert_eq!(markers.last(), Some(&299));
}

#[test]
fn a_resolution_change_across_a_discontinuity_resizes_textures_not_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = make_segments(dir.path(), "a", 0, 640, 360, 6);
    let mut hd = make_segments(dir.path(), "b", 180, 1280, 720, 4);
    hd[0].discontinuity = true;
    entries.extend(hd);
    let origin = ScriptedOrigin::start(entries);
    let (_, y4m, err) = play(&origin);
    assert_eq!(
        (y4m.width, y4m.height),
        (640, 360),
        "outputs keep their size"
    );
    let markers = y4m.markers();
    assert_eq!(
        assert_in_order(&markers),
        0,
        "no frame lost at the change: {markers:?}"
    );
    assert_eq!((markers[0], *markers.last().unwrap()), (60, 299));
    assert!(
        err.contains("video size changed 640x360 -> 1280x720"),
        "{err}"
    );
    assert!(err.contains("2 texture set(s) allocated"), "{err}");
}

#[test]
fn a_new_broadcaster_session_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = make_segments(dir.path(), "a", 0, 640, 360, 6);
    let mut next = make_segments(dir.path(), "b", 180, 640, 360, 5);
    next[0].new_session = true;
    entries.extend(next);
    let origin = ScriptedOrigin::start(entries);
    let (_, y4m, err) = play(&origin);
    let markers = y4m.markers();
    assert_in_order(&markers);
    assert_eq!(
        markers.last(),
        Some(&329),
        "the new session plays to its end: {markers:?}"
    );
    assert!(err.contains("new session"), "{err}");
    let log = origin.log();
    assert!(
        log.iter().any(|l| l.starts_with("/s1/0-6.ts")),
        "new names, sequence from 0: {log:?}"
    );
}

#[test]
fn an_outage_holds_the_last_frame_and_playback_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut entries = bank(&dir);
    entries[6].delay_before = 5.0; // nothing new for 6 s: several target durations
    let origin = ScriptedOrigin::start(entries);
    let (_, y4m, err) = play(&origin);
    let markers = y4m.markers();
    assert_eq!(
        assert_in_order(&markers),
        0,
        "nothing lost across the outage: {markers:?}"
    );
    assert_eq!(markers.last(), Some(&299));
    assert!(err.contains("outage; holding the last frame"), "{err}");
    assert!(err.contains("stream resumed"), "{err}");
}

#[test]
fn a_stream_that_never_comes_back_ends_with_an_error_after_wait() {
    let dir = tempfile::tempdir().unwrap();
    let origin = ScriptedOrigin::start_with(make_segments(dir.path(), "a", 0, 640, 360, 5), false);
    let out = run_with_limit(
        lucid().args([
            "--url",
            &origin.master_url(),
            "--no-preview",
            "--wait",
            "2",
            "--pipe",
            "y4m",
        ]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("error: ") && l.contains("no new segment for")),
        "{err}"
    );
    // Everything published was played before giving up.
    assert_eq!(Y4m::parse(&out.stdout).markers().last(), Some(&149));
}

#[test]
fn a_stream_that_is_not_live_yet_starts_within_a_poll_of_appearing() {
    let live = LiveOrigin::start(OriginOptions::default());
    live.origin.fault("master.m3u8", Fault::Status(404));
    let started = std::time::Instant::now();
    let child = lucid()
        .args([
            "--url",
            &live.master_url(),
            "--no-preview",
            "--wait",
            "60",
            "--duration",
            "2",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    live.origin.faults.lock().unwrap().clear();
    let appeared = started.elapsed().as_secs_f64();
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("waiting for the stream (HTTP 404)"), "{err}");
    // Log lines start with the time since Lucid started.
    let found = err
        .lines()
        .find(|l| l.contains("rendition: "))
        .and_then(|l| l.trim_start().split('s').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no timed rendition line:\n{err}"));
    assert!(
        found <= appeared + 2.5,
        "found the stream {found:.2}s after start; it appeared at {appeared:.2}s (polls are 2 s apart)"
    );
}

#[test]
fn stream_open_failed_and_an_empty_playlist_count_as_not_live_yet() {
    let live = LiveOrigin::start(OriginOptions::default());
    // Livepeer's answer before the broadcaster connects, then a live playlist with no
    // segments yet (Daydream's warm-up), then the stream.
    live.origin.fault(
        "master.m3u8",
        Fault::Body("text/plain", b"Stream open failed".to_vec()),
    );
    let empty = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n";
    live.origin.fault(
        "high.m3u8",
        Fault::Body("application/vnd.apple.mpegurl", empty.as_bytes().to_vec()),
    );
    let child = lucid()
        .args([
            "--url",
            &live.master_url(),
            "--no-preview",
            "--wait",
            "60",
            "--duration",
            "1",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    live.origin.faults.lock().unwrap().remove("/master.m3u8");
    std::thread::sleep(Duration::from_secs(3));
    live.origin.faults.lock().unwrap().clear();
    let out = child.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("waiting for the stream") && err.contains("Stream open failed"),
        "{err}"
    );
    assert!(err.contains("the live playlist is empty"), "{err}");
    assert!(
        err.contains("played "),
        "it played once the stream was there: {err}"
    );
}
