//! WebRTC (WHEP) playback against an independent peer: aiortc serving WHEP on 127.0.0.1
//! (`tests/peers/whep_peer.py`), sending a picture marked with its frame number. Covers
//! playing in order, warm-up (404/503) and viewer-limit (429) answers, 406 with Livepeer
//! playback info falling back to HLS, a server restart, injected packet loss, and a
//! SIGINT that still finalizes the recording, and Opus sound recorded in sync with the
//! picture.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::whep::WhepPeer;
use support::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Plays `url` headless for `seconds` into a Y4M pipe and a stats file.
fn play(url: &str, seconds: f64, extra: &[&str]) -> (Y4m, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.jsonl");
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "y4m", "--url", url])
            .args(["--duration", &seconds.to_string()])
            .arg("--stats-json")
            .arg(&stats)
            .args(extra),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    (Y4m::parse(&out.stdout), last_stats(&stats), err)
}

#[test]
fn plays_webrtc_in_order_and_deletes_the_session_on_stop() {
    let peer = WhepPeer::start(&["--location"]);
    let (y4m, stats, err) = play(&peer.url(), 3.0, &[]);
    let markers = y4m.markers();
    assert!(markers.len() >= 60, "{} frames; {err}", markers.len());
    let skipped = assert_in_order(&markers);
    assert!(skipped <= 3, "{skipped} frames skipped in {markers:?}");
    assert_eq!((y4m.width, y4m.height), (320, 180));
    assert_eq!(stats["protocol"], "webrtc", "{stats}");
    assert!(stats["protocol_why"].is_null(), "{stats}");
    let webrtc = &stats["webrtc"];
    assert!(webrtc["frames"].as_u64().unwrap() >= 60, "{stats}");
    assert!(
        webrtc["jitter_buffer_ms"].as_f64().unwrap() >= 10.0,
        "{stats}"
    );
    assert_eq!(webrtc["reconnects"], 0, "{stats}");
    assert!(webrtc["rtt_ms"].as_f64().is_some(), "RTT from ICE: {stats}");
    assert_eq!(peer.count("offer"), 1);
    assert!(
        peer.wait_for("deleted", Duration::from_secs(2)),
        "the session resource (Location) is deleted on stop"
    );
}

#[test]
fn an_ice_server_adds_a_server_reflexive_candidate_from_an_independent_stun_server() {
    let stun_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let peer = WhepPeer::start(&["--stun-port", &stun_port.to_string()]);
    let server = format!("stun:127.0.0.1:{stun_port}");
    let (y4m, stats, err) = play(&peer.url(), 1.5, &["--ice-server", &server]);
    assert!(y4m.frames.len() >= 20, "{err}");
    assert_eq!(stats["protocol"], "webrtc");
    assert_eq!(peer.count("stun_binding"), 1, "one Binding request");
    let types = &peer.events("candidates")[0]["types"];
    assert_eq!(types, &serde_json::json!(["host", "srflx"]), "{types}");
    // TURN is refused up front, in one line.
    let out = run_with_limit(
        lucid().args(["--url", &peer.url(), "--ice-server", "turn:127.0.0.1"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 2, "TURN");
}

#[test]
fn warm_up_answers_are_retried_until_the_output_exists() {
    let peer = WhepPeer::start(&["--statuses", "404,404,503,404"]);
    let (y4m, stats, err) = play(&peer.url(), 2.0, &[]);
    assert!(y4m.frames.len() >= 30, "{err}");
    assert_in_order(&y4m.markers());
    assert_eq!(stats["protocol"], "webrtc");
    let offers = peer.events("offer");
    assert_eq!(offers.len(), 5, "four refusals, then the answer");
    // About every 0.5 s, as Daydream's own client does.
    let t = |i: usize| offers[i]["t"].as_f64().unwrap();
    for i in 1..5 {
        let gap = t(i) - t(i - 1);
        assert!(
            (0.4..1.5).contains(&gap),
            "offer {i} came {gap:.2}s after the last"
        );
    }
}

#[test]
fn the_viewer_limit_waits_about_two_seconds_then_plays() {
    let peer = WhepPeer::start(&["--statuses", "429"]);
    let (y4m, stats, err) = play(&peer.url(), 2.0, &[]);
    assert!(y4m.frames.len() >= 30, "{err}");
    assert_eq!(stats["protocol"], "webrtc");
    let offers = peer.events("offer");
    assert_eq!(offers.len(), 2);
    let gap = offers[1]["t"].as_f64().unwrap() - offers[0]["t"].as_f64().unwrap();
    assert!((1.8..3.5).contains(&gap), "retried {gap:.2}s after 429");
}

/// A server whose answer's only video codec is VP8 (it ignored the H.264-only offer) is
/// told apart at once, with the codec named, instead of a connection that fails 5 s later
/// as "did not connect (ICE/DTLS)". aiortc makes the answer; the peer rewrites its video.
#[test]
fn an_answer_without_h264_is_refused_at_once_and_says_what_it_offered() {
    let peer = WhepPeer::start(&["--answer-vp8"]);
    let started = Instant::now();
    let out = run_with_limit(
        lucid().args(["--no-preview", "--pipe", "y4m", "--url", &peer.url()]),
        LIMIT,
    );
    assert_one_clear_error(&out, 5, "not H.264 (it offers VP8)");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(peer.count("answered"), 1, "not retried");
}

#[test]
fn a_refusal_that_persists_past_wait_is_one_clear_error() {
    let peer = WhepPeer::start(&["--refuse", "403"]);
    let out = run_with_limit(
        lucid().args(["--no-preview", "--pipe", "y4m", "--url", &peer.url()]),
        LIMIT,
    );
    assert_one_clear_error(&out, 4, "answered HTTP 403");
    let peer = WhepPeer::start(&["--statuses", &["404"; 50].join(",")]);
    let started = Instant::now();
    let out = run_with_limit(
        lucid().args(["--no-preview", "--wait", "1.5", "--url", &peer.url()]),
        LIMIT,
    );
    assert_one_clear_error(&out, 4, "answered HTTP 404");
    assert!(started.elapsed() < Duration::from_secs(10));
    let offers = peer.count("offer");
    assert!((3..=5).contains(&offers), "{offers} offers in 1.5 s");
}

/// Livepeer playback info for `id`, served from a directory, listing `webrtc` and `hls`.
fn playback_info(id: &str, webrtc: &str, hls: &str) -> (tempfile::TempDir, Origin) {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("api/playback");
    std::fs::create_dir_all(&api).unwrap();
    let info = serde_json::json!({
        "type": "live",
        "meta": {"live": 1, "source": [
            {"hrn": "HLS (TS)", "type": "html5/application/vnd.apple.mpegurl", "url": hls},
            {"hrn": "WebRTC (H264)", "type": "html5/video/h264", "url": webrtc},
        ]}
    });
    std::fs::write(api.join(id), info.to_string()).unwrap();
    let origin = Origin::serve(dir.path());
    (dir, origin)
}

#[test]
fn a_playback_id_whose_webrtc_answers_406_plays_hls_and_says_why() {
    let peer = WhepPeer::start(&["--refuse", "406"]);
    let live = LiveOrigin::start(OriginOptions::default());
    let id = "abcd1234efgh5678";
    let (_dir, api) = playback_info(id, &peer.url(), &live.master_url());
    let api_url = api.url("");
    let (y4m, stats, err) = play(id, 4.0, &["--livepeer-api", &api_url]);
    assert_eq!(stats["protocol"], "hls", "{stats}");
    assert_eq!(stats["protocol_why"], "HLS: WebRTC answered 406", "{stats}");
    assert!(y4m.frames.len() >= 20, "{err}");
    assert_in_order(&y4m.markers());
    assert_eq!(peer.count("offer"), 1, "406 falls back at once");

    // Forced WebRTC: the same refusal is an error, and HLS is never asked.
    let out = run_with_limit(
        lucid().args([
            "--no-preview",
            "--url",
            id,
            "--protocol",
            "webrtc",
            "--livepeer-api",
            &api_url,
        ]),
        LIMIT,
    );
    assert_one_clear_error(&out, 4, "answered HTTP 406");
}

#[test]
fn a_server_restart_mid_stream_reconnects_and_playback_goes_on() {
    let mut peer = WhepPeer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.jsonl");
    let mut child = lucid()
        .args(["--no-preview", "--pipe", "y4m", "--duration", "9", "--url"])
        .arg(peer.url())
        .arg("--stats-json")
        .arg(&stats)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    let err = collect_stderr(&mut child);
    assert!(peer.wait_for("answered", Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(2500));
    peer.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let back = peer.restart();
    let back_at = Instant::now();
    assert!(
        back.wait_for("answered", Duration::from_secs(5)),
        "Lucid offered again"
    );
    let resumed = back_at.elapsed();
    let status = wait_with_limit(&mut child, LIMIT);
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(
        resumed < Duration::from_secs(2),
        "a new session {resumed:?} after the server came back"
    );
    let markers = Y4m::parse(&reader.join().unwrap()).markers();
    // The new server numbers its frames from 0 again: two runs, each in order.
    let restart = markers
        .windows(2)
        .position(|w| w[1] < w[0])
        .expect("frames from the restarted server")
        + 1;
    assert!(restart >= 40, "{restart} frames before the restart");
    assert_in_order(&markers[..restart]);
    assert_in_order(&markers[restart..]);
    assert!(markers.len() - restart >= 60, "{markers:?}");
    let s = last_stats(&stats);
    assert_eq!(s["webrtc"]["reconnects"], 1, "{s}");
}

#[test]
fn packet_loss_asks_for_a_keyframe_and_never_shows_a_broken_picture() {
    let peer = WhepPeer::start(&["--drop-at", "1.5", "--drop-for", "0.4"]);
    let (y4m, stats, err) = play(&peer.url(), 4.0, &[]);
    assert!(peer.count("dropping") == 1, "the peer dropped packets");
    let requests = peer.events("keyframe_request");
    let dropped_at = peer.events("dropping")[0]["t"].as_f64().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r["t"].as_f64().unwrap() > dropped_at),
        "a keyframe request after the loss; {err}"
    );
    let webrtc = &stats["webrtc"];
    assert!(webrtc["gaps"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        webrtc["keyframe_requests"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    // Every picture shown carries a readable, increasing frame number: nothing decoded
    // from a broken reference reached the output, and frames went on after the loss.
    let markers = y4m.markers();
    let skipped = assert_in_order(&markers);
    assert!(skipped >= 10, "the lost frames are skipped ({skipped})");
    assert!(*markers.last().unwrap() >= 90, "{markers:?}");
    // A picture decoded on a broken reference does not match its own number: the peer
    // paints each frame's body in a grey that follows the frame number.
    let (w, h) = (y4m.width as usize, y4m.height as usize);
    for (f, n) in y4m.frames.iter().zip(&markers) {
        let body = f[(h * 2 / 3) * w + w / 2];
        let expected = 60 + (n * 3 % 120) as i32;
        assert!(
            (i32::from(body) - expected).abs() <= 12,
            "frame {n} shows grey {body}, not {expected}: a corrupt picture was shown"
        );
    }
}

#[test]
fn network_jitter_raises_the_buffer_target_and_frames_stay_in_order() {
    let clean = WhepPeer::start(&[]);
    let (_, calm, _) = play(&clean.url(), 3.0, &[]);
    drop(clean);
    // Packets late by up to 60 ms, out of order: two frame periods of jitter.
    let peer = WhepPeer::start(&["--jitter-ms", "60"]);
    let (y4m, stats, err) = play(&peer.url(), 5.0, &[]);
    let markers = y4m.markers();
    assert!(markers.len() >= 100, "{} frames; {err}", markers.len());
    assert_in_order(&markers);
    let target = stats["webrtc"]["jitter_buffer_ms"].as_f64().unwrap();
    let calm_target = calm["webrtc"]["jitter_buffer_ms"].as_f64().unwrap();
    let jitter = stats["webrtc"]["jitter_ms"].as_f64().unwrap();
    assert!(
        target > calm_target && target >= 20.0,
        "target {target} ms under jitter (calm: {calm_target} ms)"
    );
    assert!(
        jitter > calm["webrtc"]["jitter_ms"].as_f64().unwrap(),
        "{stats}"
    );
}

#[test]
fn sigint_finalizes_the_recording_of_a_webrtc_stream() {
    let peer = WhepPeer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("show.mp4");
    let stats = dir.path().join("stats.jsonl");
    let mut child = lucid()
        .args(["--no-preview", "--url", &peer.url()])
        .arg("--record")
        .arg(&record)
        .arg("--stats-json")
        .arg(&stats)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect_stderr(&mut child);
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "never played");
        let presented = std::fs::read_to_string(&stats)
            .ok()
            .and_then(|t| t.lines().last().map(str::to_string))
            .and_then(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .and_then(|v| v["presented"].as_u64())
            .unwrap_or(0);
        if presented >= 45 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    send_signal(child.id(), "INT");
    let stopped_at = Instant::now();
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(stopped_at.elapsed() < Duration::from_secs(2), "{err}");
    let (w, h, markers) = file_markers(&record);
    assert_eq!((w, h), (320, 180));
    assert!(markers.len() >= 45, "{} frames recorded", markers.len());
    assert_in_order(&markers);
}

#[test]
fn a_livepeer_webrtc_url_that_redirects_keeps_the_post_and_plays() {
    let peer = WhepPeer::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let node = Origin::serve(dir.path());
    let path = "webrtc/abcd1234efgh5678";
    node.fault(&format!("/{path}"), Fault::Redirect(peer.url()));
    let (y4m, stats, err) = play(&node.url(path), 1.5, &[]);
    assert!(y4m.frames.len() >= 20, "{err}");
    assert_eq!(stats["protocol"], "webrtc", "{stats}");
    let offers = peer.events("offer");
    assert_eq!(
        offers.len(),
        1,
        "the POST and its body reached the redirect target"
    );
    assert_eq!(offers[0]["content_type"], "application/sdp");
}

#[test]
fn webrtc_sound_is_recorded_beside_the_picture_it_was_captured_with() {
    // The peer sends Opus with a click at the capture time of frames 0, 45, 90, ...; the
    // two RTP streams' timestamps are unrelated, so only RTCP's sender reports (or, before
    // them, arrival) can line them up. Packets late by up to 60 ms make the jitter buffer
    // move its delay while it plays: the sound must move with the picture.
    let peer = WhepPeer::start(&["--sound-clicks", "--jitter-ms", "60"]);
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("show.mkv");
    let stats = dir.path().join("stats.jsonl");
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--url", &peer.url(), "--duration", "9"])
            .arg("--record")
            .arg(&record)
            .arg("--stats-json")
            .arg(&stats),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}\n{}", peer.events_text());
    let s = last_stats(&stats);
    assert_eq!(s["audio"]["codec"], "opus", "{s}");
    assert_eq!(s["audio"]["sample_rate"], 48000, "{s}");
    assert!(s["webrtc"]["sound_packets"].as_u64().unwrap() > 300, "{s}");
    assert!(
        s["webrtc"]["jitter_buffer_ms"].as_f64().unwrap() >= 20.0,
        "{s}"
    );
    let found = support::sound::offsets(&record);
    let markers: Vec<u64> = found.iter().map(|f| f.0).collect();
    assert!(found.len() >= 4, "clicks found: {found:?}\n{err}");
    for pair in markers.windows(2) {
        assert_eq!(pair[1] - pair[0], 45, "every click is there: {markers:?}");
    }
    support::sound::assert_in_sync(&found, &markers, 0.040, "WebRTC");
}
