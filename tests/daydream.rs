//! Daydream control against a fake Daydream API on 127.0.0.1 that speaks the documented
//! shapes and records every request (`support::daydream`), with the output played over
//! WebRTC from an independent peer (aiortc, `tests/peers/whep_peer.py`) named by the fake's
//! `whep_url`. Asserts the exact requests (paths, methods, headers, bodies), `model_id` on
//! every PATCH, 401/404/429/400 handling, and that the key never leaves Lucid.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::daydream::{FakeDaydream, KEY};
use support::whep::WhepPeer;
use support::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Lucid headless with the fake's API and `key` in the environment.
fn lucid_with(fake: &FakeDaydream, key: Option<&str>) -> Command {
    let mut cmd = lucid();
    cmd.env_remove("DAYDREAM_API_KEY")
        .args(["--no-preview", "--daydream-api", &fake.url()]);
    if let Some(key) = key {
        cmd.env("DAYDREAM_API_KEY", key);
    }
    cmd
}

struct Run {
    out: std::process::Output,
    stats: Option<serde_json::Value>,
    stats_text: String,
    err: String,
}

/// Plays for `seconds` into a Y4M pipe.
fn play(fake: &FakeDaydream, seconds: f64, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.jsonl");
    let out = run_with_limit(
        lucid_with(fake, Some(KEY))
            .args(["--pipe", "y4m", "--duration", &seconds.to_string()])
            .arg("--stats-json")
            .arg(&stats)
            .args(extra),
        LIMIT,
    );
    let stats_text = std::fs::read_to_string(&stats).unwrap_or_default();
    Run {
        err: stderr_of(&out),
        stats: stats_text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok()),
        stats_text,
        out,
    }
}

fn assert_secret_kept(run: &Run) {
    assert!(!run.err.contains(KEY), "the key is on stderr:\n{}", run.err);
    assert!(!run.stats_text.contains(KEY), "the key is in the stats");
    let stdout_has_key = run
        .out
        .stdout
        .windows(KEY.len())
        .any(|w| w == KEY.as_bytes());
    assert!(!stdout_has_key, "the key is on stdout");
}

#[test]
fn creating_a_stream_prints_it_first_plays_its_output_and_keeps_the_key_secret() {
    let peer = WhepPeer::start(&[]);
    let fake = FakeDaydream::start(Some(peer.url()));
    fake.script.lock().unwrap().output_fps = 14.0;
    let run = play(
        &fake,
        3.0,
        &[
            "--daydream-create",
            "--model",
            "stabilityai/sd-turbo",
            "--prompt",
            "a forest at dawn",
            "--seed",
            "42",
        ],
    );
    assert!(run.out.status.success(), "{}", run.err);
    let mut lines = run.err.lines();
    assert_eq!(
        lines.next(),
        Some("daydream stream: str_created"),
        "{}",
        run.err
    );
    assert_eq!(
        lines.next(),
        Some("daydream whip url: https://ai.livepeer.example/live/video-to-video/stk_new/whip"),
        "{}",
        run.err
    );
    let posts = fake.with_method("POST");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].path, "/v1/streams");
    assert_eq!(
        posts[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(posts[0].header("content-type"), Some("application/json"));
    assert_eq!(
        posts[0].json(),
        json!({"pipeline": "streamdiffusion", "params": {
            "model_id": "stabilityai/sd-turbo", "prompt": "a forest at dawn", "seed": 42}})
    );
    // The parameters went with the creation: nothing to PATCH.
    assert!(fake.with_method("PATCH").is_empty());
    let gets: Vec<String> = fake
        .with_method("GET")
        .into_iter()
        .map(|r| r.path)
        .collect();
    assert!(
        gets.iter().all(|p| p == "/v1/streams/str_created/status"),
        "{gets:?}"
    );
    assert!(
        gets.len() >= 2,
        "status polled about once a second: {gets:?}"
    );
    // The output played over WebRTC from the status's whep_url.
    let y4m = Y4m::parse(&run.out.stdout);
    assert!(
        y4m.frames.len() >= 30,
        "{} frames\n{}",
        y4m.frames.len(),
        run.err
    );
    assert_in_order(&y4m.markers());
    let stats = run.stats.as_ref().expect("stats");
    assert_eq!(stats["protocol"], "webrtc", "{stats}");
    assert_eq!(stats["daydream"]["stream"], "str_created", "{stats}");
    assert_eq!(stats["daydream"]["output_ready"], true, "{stats}");
    assert_secret_kept(&run);
}

#[test]
fn attaching_sends_the_command_line_parameters_once_with_the_model() {
    let peer = WhepPeer::start(&[]);
    let fake = FakeDaydream::start(Some(peer.url()));
    let run = play(
        &fake,
        2.0,
        &[
            "--daydream-stream",
            "str_existing",
            "--prompt",
            "a storm over the sea",
            "--guidance",
            "1.5",
            "--steps",
            "30",
        ],
    );
    assert!(run.out.status.success(), "{}", run.err);
    let requests = fake.requests();
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/v1/streams/str_existing");
    let patches = fake.with_method("PATCH");
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].path, "/v1/streams/str_existing");
    assert_eq!(
        patches[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    // model_id is the stream's own (it was not asked to change), always present.
    assert_eq!(
        patches[0].json(),
        json!({"pipeline": "streamdiffusion", "params": {
            "model_id": "stabilityai/sdxl-turbo", "prompt": "a storm over the sea",
            "guidance_scale": 1.5, "num_inference_steps": 30}})
    );
    let stats = run.stats.as_ref().expect("stats");
    assert_eq!(stats["daydream"]["changes"]["prompt"], "applied", "{stats}");
    assert_eq!(stats["daydream"]["patches_sent"], 1, "{stats}");
    assert_secret_kept(&run);
}

#[test]
fn a_rate_limit_is_waited_out_and_the_change_still_lands_while_the_video_plays() {
    let peer = WhepPeer::start(&[]);
    let fake = FakeDaydream::start(Some(peer.url()));
    fake.script.lock().unwrap().patch_answers.push_back((
        429,
        json!({"success": false, "error": "Too many requests", "code": "RATE_LIMITED", "status": 429}),
        Some(1),
    ));
    let run = play(
        &fake,
        3.0,
        &[
            "--daydream-stream",
            "str_existing",
            "--prompt",
            "glass birds",
        ],
    );
    assert!(run.out.status.success(), "{}", run.err);
    let patches = fake.with_method("PATCH");
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert_eq!(
        patches[0].body, patches[1].body,
        "the same change, sent again"
    );
    let gap = patches[1].at - patches[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 was not waited out: {gap:?}"
    );
    assert!(gap < Duration::from_millis(2500), "{gap:?}");
    let stats = run.stats.as_ref().expect("stats");
    assert_eq!(stats["daydream"]["changes"]["prompt"], "applied", "{stats}");
    let y4m = Y4m::parse(&run.out.stdout);
    assert!(
        y4m.frames.len() >= 45,
        "the video plays on: {} frames",
        y4m.frames.len()
    );
}

#[test]
fn a_refused_change_is_reported_and_the_video_plays_on() {
    let peer = WhepPeer::start(&[]);
    let fake = FakeDaydream::start(Some(peer.url()));
    fake.script.lock().unwrap().patch_answers.push_back((
        400,
        json!({"success": false, "error": "num_inference_steps must be at most 50 for this model",
               "code": "STREAMS/INVALID_PARAMS", "status": 400}),
        None,
    ));
    let run = play(
        &fake,
        2.0,
        &["--daydream-stream", "str_existing", "--steps", "90"],
    );
    assert!(run.out.status.success(), "{}", run.err);
    assert_eq!(
        fake.with_method("PATCH").len(),
        1,
        "a refusal is not retried"
    );
    let stats = run.stats.as_ref().expect("stats");
    assert_eq!(
        stats["daydream"]["changes"]["num_inference_steps"],
        "failed: num_inference_steps must be at most 50 for this model",
        "{stats}"
    );
    assert!(run.err.contains("the previous value stays"), "{}", run.err);
    assert!(Y4m::parse(&run.out.stdout).frames.len() >= 30);
}

/// A PATCH that Daydream redirects to another origin is not followed: reqwest would send
/// it there without the key, and that origin's 200 would be counted as applied. The change
/// is reported as failed, and the other origin never hears of it.
#[test]
fn a_cross_origin_redirect_of_a_change_is_an_error_not_applied() {
    let peer = WhepPeer::start(&[]);
    let fake = FakeDaydream::start(Some(peer.url()));
    let elsewhere = FakeDaydream::start(None);
    fake.script.lock().unwrap().patch_redirect =
        Some(format!("{}/v1/streams/str_existing", elsewhere.url()));
    let run = play(
        &fake,
        2.0,
        &["--daydream-stream", "str_existing", "--prompt", "a storm"],
    );
    assert!(run.out.status.success(), "{}", run.err);
    let stats = run.stats.as_ref().expect("stats");
    let change = stats["daydream"]["changes"]["prompt"]
        .as_str()
        .unwrap_or("");
    assert!(
        change.starts_with("failed:") && change.contains("another origin"),
        "{stats}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );
    assert_eq!(fake.with_method("PATCH").len(), 1, "not retried");
}

#[test]
fn a_refused_key_is_one_clear_error_that_says_where_the_key_came_from() {
    let fake = FakeDaydream::start(None);
    let out = run_with_limit(
        lucid_with(&fake, Some("sk_wrong_1234567")).args(["--daydream-stream", "str_existing"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 4, "DAYDREAM_API_KEY");
    assert!(!stderr_of(&out).contains("sk_wrong_1234567"));

    // From the key file: the message names the file, never the key.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lucid");
    std::fs::create_dir_all(&config).unwrap();
    let file = config.join("daydream-api-key");
    std::fs::write(&file, "sk_wrong_from_file\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = run_with_limit(
        lucid_with(&fake, None)
            .env("XDG_CONFIG_HOME", dir.path())
            .args(["--daydream-stream", "str_existing"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 4, &file.display().to_string());
    assert!(!stderr_of(&out).contains("sk_wrong_from_file"));

    // A key file other users can read is refused before anything is sent.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = fake.requests().len();
    let out = run_with_limit(
        lucid_with(&fake, None)
            .env("XDG_CONFIG_HOME", dir.path())
            .args(["--daydream-stream", "str_existing"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 2, "chmod 600");
    assert_eq!(fake.requests().len(), before);
}

#[test]
fn an_unknown_stream_is_no_such_stream() {
    let fake = FakeDaydream::start(None);
    let out = run_with_limit(
        lucid_with(&fake, Some(KEY)).args(["--daydream-stream", "str_nope"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 4, "no such stream");
    assert_eq!(fake.requests()[0].path, "/v1/streams/str_nope");
}

/// An answer over Lucid's 1 MiB cap is a protocol error (exit 5) that says so, not
/// "host unreachable" (exit 3): the host answered, with something Lucid will not read.
#[test]
fn an_answer_over_the_size_cap_is_a_protocol_error() {
    let fake = FakeDaydream::start(None);
    fake.script.lock().unwrap().streams.push(json!({
        "id": "str_huge",
        "pipeline": "streamdiffusion",
        "params": {"model_id": "stabilityai/sd-turbo", "prompt": "x".repeat(2 << 20)},
    }));
    let out = run_with_limit(
        lucid_with(&fake, Some(KEY)).args(["--daydream-stream", "str_huge"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 5, "over 1048576 bytes");
}

#[test]
fn a_failing_status_endpoint_is_reported_retried_and_the_video_plays_on() {
    let peer = WhepPeer::start(&[]);
    let fake = FakeDaydream::start(Some(peer.url()));
    {
        let mut script = fake.script.lock().unwrap();
        script.output_fps = 12.0;
        // Attaching reads it once; then two polls fail with 503.
        script.status_answers.extend([200, 503, 503]);
    }
    let run = play(&fake, 5.0, &["--daydream-stream", "str_existing"]);
    assert!(run.out.status.success(), "{}", run.err);
    let lines: Vec<serde_json::Value> = run
        .stats_text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|l| l["daydream"]["status_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 503"))),
        "the failure is reported: {}",
        run.stats_text
    );
    let last = lines.last().expect("stats");
    assert!(last["daydream"]["status_error"].is_null(), "{last}");
    assert_eq!(last["daydream"]["output_ready"], true, "{last}");
    let statuses = fake
        .with_method("GET")
        .iter()
        .filter(|r| r.path.ends_with("/status"))
        .count();
    assert!(statuses >= 4, "polling went on: {statuses}");
    assert!(
        Y4m::parse(&run.out.stdout).frames.len() >= 100,
        "the video plays on"
    );
}

#[test]
fn a_model_change_from_the_command_line_says_it_reloads_the_pipeline() {
    let peer = WhepPeer::start(&[]);
    let fake = FakeDaydream::start(Some(peer.url()));
    let run = play(
        &fake,
        1.5,
        &[
            "--daydream-stream",
            "str_existing",
            "--model",
            "stabilityai/sd-turbo",
        ],
    );
    assert!(run.out.status.success(), "{}", run.err);
    let patches = fake.with_method("PATCH");
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(
        patches[0].json(),
        json!({"pipeline": "streamdiffusion", "params": {"model_id": "stabilityai/sd-turbo"}})
    );
    assert!(
        run.err.contains("reloads Daydream's pipeline"),
        "{}",
        run.err
    );
    let stats = run.stats.as_ref().expect("stats");
    assert_eq!(
        stats["daydream"]["model"], "stabilityai/sd-turbo",
        "{stats}"
    );
}
