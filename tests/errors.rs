//! Bad input gets one clear line on stderr and a distinct non-zero exit code, no panic.
//! These fail before any rendering starts, so they need no GPU or display.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn unreachable_host() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/hls/x/index.m3u8");
    let out = run_with_limit(lucid().args(["--url", &url, "--no-preview"]), LIMIT);
    assert_one_clear_error(&out, 3, "cannot reach");
    assert!(
        stderr_of(&out).contains("retrying"),
        "the retry is reported"
    );
}

#[test]
fn playlist_that_stays_404() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::serve(dir.path());
    let out = run_with_limit(
        lucid().args([
            "--url",
            &origin.url("live/index.m3u8"),
            "--no-preview",
            "--wait",
            "3",
        ]),
        LIMIT,
    );
    // Polls at 0, 0.5, 1.5 and 3 s: --wait bounds the retry.
    assert_one_clear_error(&out, 4, "HTTP 404 after 4 attempts");
    let err = stderr_of(&out);
    assert_eq!(
        err.matches("waiting for the stream (HTTP 404); retrying")
            .count(),
        3,
        "each retry is reported:\n{err}"
    );
    assert_eq!(
        origin.requests.lock().unwrap().len(),
        4,
        "the retry is bounded"
    );
}

#[test]
fn body_that_is_not_a_playlist() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::serve(dir.path());
    origin.fault(
        "page.m3u8",
        Fault::Body("text/html", b"<!doctype html><html>player</html>".to_vec()),
    );
    let out = run_with_limit(
        lucid().args(["--url", &origin.url("page.m3u8"), "--no-preview"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 5, "is not an HLS playlist");
}

#[test]
fn stream_without_video() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3",
        ])
        .args([
            "-c:a",
            "aac",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
        ])
        .arg(dir.path().join("audio.m3u8"))
        .status()
        .unwrap();
    assert!(status.success());
    let origin = Origin::serve(dir.path());
    let out = run_with_limit(
        lucid().args(["--url", &origin.url("audio.m3u8"), "--no-preview"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 5, "has no video");
}

#[test]
fn unwritable_record_path() {
    let out = run_with_limit(
        lucid().args(["--no-preview", "--record", "/nonexistent-dir/out.mp4"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 7, "cannot write /nonexistent-dir/out.mp4");
}

#[test]
fn record_path_with_unknown_container() {
    let out = run_with_limit(lucid().args(["--no-preview", "--record", "out.avi"]), LIMIT);
    assert_one_clear_error(&out, 2, "use a .mp4 or .mkv");
}

#[test]
fn missing_file_input() {
    let out = run_with_limit(
        lucid().args(["--no-preview", "--url", "/nonexistent/clip.mp4"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 6, "cannot open /nonexistent/clip.mp4");
}

#[test]
fn window_without_a_display() {
    let out = run_with_limit(
        lucid()
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .args(["--duration", "1"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 8, "no display");
    // A display that is named but not there.
    let out = run_with_limit(
        lucid()
            .env("DISPLAY", ":254")
            .env_remove("WAYLAND_DISPLAY")
            .args(["--duration", "1"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 8, "display server is not reachable");
}
