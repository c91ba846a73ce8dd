//! Installation mode, as a venue's technician meets it: logs a journal can keep, and (as
//! they land) kiosk keys under Xvfb, systemd's notify protocol on a real socket, state that
//! survives a SIGKILL.

mod support;

use std::time::Duration;

use support::*;

const LIMIT: Duration = Duration::from_secs(90);

#[test]
fn a_headless_run_under_a_service_manager_logs_no_false_errors_and_no_terminal_codes() {
    // A systemd system service has no XDG_RUNTIME_DIR and a pipe for stderr. Mesa's Vulkan
    // device-select layer used to make libwayland print two "error: XDG_RUNTIME_DIR is
    // invalid" lines into every journal.
    let out = run_with_limit(
        lucid()
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("NODEVICE_SELECT")
            .args(["--no-preview", "--duration", "2", "--pipe", "y4m"]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        Y4m::parse(&out.stdout).frames.len() >= 30,
        "it rendered: {err}"
    );
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("error:") || l.contains(" ERROR "))
        .collect();
    assert!(errors.is_empty(), "false errors in the journal: {errors:?}");
    assert!(!err.contains('\u{1b}'), "terminal codes in a pipe: {err:?}");
    assert!(
        !err.contains('\r'),
        "a status line rewritten in place: {err:?}"
    );
    assert!(err.lines().any(|l| l.starts_with("status: ")), "{err}");
}

/// A service manager's notify socket: every datagram Lucid sends, with when it came.
struct NotifySocket {
    path: std::path::PathBuf,
    messages: std::sync::Arc<std::sync::Mutex<Vec<(std::time::Instant, String)>>>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let messages: std::sync::Arc<std::sync::Mutex<Vec<_>>> = Default::default();
        let sink = messages.clone();
        // Ends with the test process; bounded by the socket's read timeout per loop.
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock().unwrap().push((std::time::Instant::now(), text));
                }
            }
        });
        NotifySocket {
            path,
            messages,
            _dir: dir,
        }
    }

    /// Each `KEY=value` line received, with when its datagram came.
    fn lines(&self) -> Vec<(std::time::Instant, String)> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(t, m)| m.lines().map(|l| (*t, l.to_string())).collect::<Vec<_>>())
            .collect()
    }

    fn pings(&self) -> Vec<std::time::Instant> {
        self.lines()
            .into_iter()
            .filter(|(_, l)| l == "WATCHDOG=1")
            .map(|(t, _)| t)
            .collect()
    }
}

#[test]
fn systemd_hears_ready_watchdog_pings_the_status_and_stopping() {
    let notify = NotifySocket::bind();
    let out = run_with_limit(
        lucid()
            .env("NOTIFY_SOCKET", &notify.path)
            .env("WATCHDOG_USEC", "400000")
            .args(["--no-preview", "--duration", "3", "--pipe", "y4m"]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    let lines = notify.lines();
    let keys: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        keys.iter().filter(|l| **l == "READY=1").count(),
        1,
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .any(|l| l.starts_with("STATUS=") && l.contains("playing")),
        "{keys:?}"
    );
    // STOPPING=1 once, as the show stops; the render loop may still ping the watchdog
    // while the outputs drain (the protocol allows it, and a long drain needs it), but
    // nothing else follows.
    let stopping = keys.iter().position(|l| *l == "STOPPING=1");
    assert!(stopping.is_some(), "{keys:?}");
    assert_eq!(
        keys.iter().filter(|l| **l == "STOPPING=1").count(),
        1,
        "{keys:?}"
    );
    assert!(
        keys[stopping.unwrap() + 1..]
            .iter()
            .all(|l| *l == "WATCHDOG=1"),
        "after STOPPING=1: {keys:?}"
    );
    // Half of WATCHDOG_USEC: a ping every 200 ms over 3 s of show, never 400 ms apart.
    let pings = notify.pings();
    assert!(pings.len() >= 10, "{} pings: {keys:?}", pings.len());
    let worst = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(worst < Duration::from_millis(400), "pings {worst:?} apart");
}

#[test]
fn a_frozen_render_loop_stops_the_watchdog_pings() {
    let notify = NotifySocket::bind();
    let mut child = lucid()
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "400000")
        .env("LUCID_TEST_FREEZE_AFTER_FRAMES", "45")
        .args(["--no-preview", "--pipe", "y4m"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect_stderr(&mut child);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !notify.lines().iter().any(|(_, l)| l == "READY=1") {
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    // 45 frames at 30 fps, then the loop hangs: no ping for the 2 s after.
    std::thread::sleep(Duration::from_secs(4));
    let silent_since = *notify.pings().last().expect("pings before the freeze");
    assert!(
        silent_since.elapsed() >= Duration::from_secs(2),
        "pings go on from a frozen loop"
    );
    assert!(child.try_wait().unwrap().is_none(), "it hung, not ended");
    send_signal(child.id(), "KILL");
    let _ = wait_with_limit(&mut child, Duration::from_secs(10));
    let err = err.join().unwrap();
    assert!(err.contains("hangs on purpose"), "{err}");
}

fn osc(port: u16, addr: &str, value: f32) {
    let packet = rosc::OscPacket::Message(rosc::OscMessage {
        addr: addr.into(),
        args: vec![rosc::OscType::Float(value)],
    });
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .send_to(
            &rosc::encoder::encode(&packet).unwrap(),
            ("127.0.0.1", port),
        )
        .unwrap();
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Cr sample at the picture's centre of a frame of a 4:2:0 Y4M.
fn centre_cr(y4m: &Y4m, frame: &[u8]) -> u8 {
    y4m.centre_chroma(frame).1
}

/// A second of the test pattern, tinted by `--state`'s chain or not at all.
fn play_with_state(state: &std::path::Path) -> (Y4m, String) {
    let out = run_with_limit(
        lucid()
            .args([
                "--no-preview",
                "--pipe",
                "y4m",
                "--width",
                "320",
                "--height",
                "180",
            ])
            .args(["--effect", "tint:color=#ff0000,amount=0", "--duration", "1"])
            .arg("--state")
            .arg(state),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    (Y4m::parse(&out.stdout), err)
}

#[test]
fn state_survives_a_sigkill_and_a_corrupt_state_file_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("show.state");
    let stats = dir.path().join("stats.jsonl");
    let port = free_udp_port();
    // A show with a tint at nothing; OSC turns it up and freezes the picture.
    let mut child = lucid()
        .args([
            "--no-preview",
            "--pipe",
            "y4m",
            "--width",
            "320",
            "--height",
            "180",
        ])
        .args(["--effect", "tint:color=#ff0000,amount=0"])
        .args(["--osc", &port.to_string()])
        .arg("--state")
        .arg(&state)
        .arg("--stats-json")
        .arg(&stats)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect_stderr(&mut child);
    wait_for_presented(&stats, 15);
    osc(port, "/lucid/effect/tint/amount", 1.0);
    osc(port, "/lucid/freeze", 1.0);
    // Within a second of the change, the file says so.
    let changed = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        if text.contains("freeze: true") && text.contains("\"amount\": 1.0") {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_millis(1500),
            "not on disk within a second: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Killed mid-show: nothing gets to finish.
    send_signal(child.id(), "KILL");
    let _ = wait_with_limit(&mut child, Duration::from_secs(10));
    drop(err.join());
    // It comes back as it was: tinted from its first frame, frozen.
    let (y4m, err) = play_with_state(&state);
    assert!(
        err.contains("state restored") && err.contains("freeze on"),
        "{err}"
    );
    let first = y4m.frames.first().expect("a frame");
    // The test pattern's centre: Cr 104 untinted, 141 under the full red tint.
    assert!(centre_cr(&y4m, first) > 125, "the tint came back: {err}");
    // A file that is not a state: set aside, said, and the show plays as asked.
    std::fs::write(&state, "(master: 0.5, freeze: tru").unwrap();
    let (y4m, err) = play_with_state(&state);
    assert!(err.contains("set aside as"), "{err}");
    assert!(dir.path().join("show.state.corrupt").exists());
    assert!(
        centre_cr(&y4m, &y4m.frames[0]) < 120,
        "the command line's chain"
    );
    assert!(state.exists(), "a fresh state is kept again");
}

/// The HTTP tests' bearer token.
const TOKEN: &str = "lucid-test-token-0123456789";

/// A token file holding [`TOKEN`], with these permissions.
fn write_token_file(dir: &std::path::Path, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    file
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_http_api_answers_status_metrics_and_osc_to_the_token_holder_only() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token_file(dir.path(), 0o600);
    let token = TOKEN;
    let port = free_tcp_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut cmd = lucid();
    cmd.args([
        "--no-preview",
        "--pipe",
        "y4m",
        "--width",
        "320",
        "--height",
        "180",
    ])
    .args([
        "--effect",
        "tint:color=#ff0000,amount=0",
        "--duration",
        "60",
    ])
    .args(["--http", &format!("127.0.0.1:{port}")])
    .arg("--http-token-file")
    .arg(&token_file);
    let (mut child, out, err) = spawn_piped(&mut cmd);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let bearer = format!("Bearer {token}");
    let get = |path: &str, auth: Option<&str>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    // Up, and playing.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status: serde_json::Value = loop {
        if let Ok(r) = get("/api/status", Some(&bearer))
            && r.status() == 200
        {
            let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
            if v["presented"].as_u64().unwrap_or(0) > 10 {
                break v;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the API never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["state"], "playing", "{status}");
    // Nobody else: no token, a wrong one.
    assert_eq!(get("/api/status", None).unwrap().status(), 401);
    assert_eq!(
        get("/metrics", Some("Bearer lucid-test-token-0123456780"))
            .unwrap()
            .status(),
        401
    );
    // Prometheus text.
    let metrics = get("/metrics", Some(&bearer)).unwrap().text().unwrap();
    for needle in [
        "# HELP lucid_frames_shown_total",
        "# TYPE lucid_frames_shown_total counter",
        "# TYPE lucid_fps gauge",
        "lucid_frames_dropped_total{where=\"clock\"}",
        "# TYPE lucid_stalls_total counter",
        "lucid_output_up{output=\"pipe\"} 1",
        "# TYPE lucid_reconnects_total counter",
    ] {
        assert!(metrics.contains(needle), "{needle} missing:\n{metrics}");
    }
    let shown: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lucid_frames_shown_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(shown > 10.0, "{metrics}");
    // OSC over HTTP: applied, or a 400 that says why.
    let post = |body: &str| {
        http.post(format!("{base}/api/osc"))
            .header("Authorization", &bearer)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .unwrap()
    };
    let r = post(r#"{"address": "/lucid/effect/tint/amount", "args": [1.0]}"#);
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let r = post(r#"{"address": "/lucid/nope", "args": [1.0]}"#);
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("/lucid/nope"));
    let r = post("{not json");
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("not JSON"));
    // The output as it is now, at its size or scaled down: real JPEGs FFmpeg decodes.
    for (query, size) in [("", (320, 180)), ("?width=160", (160, 90))] {
        let r = get(&format!("/api/snapshot.jpg{query}"), Some(&bearer)).unwrap();
        assert_eq!(r.status(), 200, "snapshot{query}");
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        let file = dir.path().join(format!("snapshot{}.jpg", size.0));
        std::fs::write(&file, r.bytes().unwrap()).unwrap();
        let (w, h, _) = file_markers(&file);
        assert_eq!((w, h), size, "snapshot{query}");
    }
    let r = get("/api/snapshot.jpg?width=huge", Some(&bearer)).unwrap();
    assert_eq!(r.status(), 400);
    // Stopped over HTTP, long before its --duration: cleanly, the pipe complete.
    let stop = |auth: &str| {
        http.post(format!("{base}/api/stop"))
            .header("Authorization", auth)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(stop("Bearer not-the-token"), 401);
    assert_eq!(stop(&bearer), 200);
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{err}");
    assert!(err.contains("stop requested over HTTP"), "{err}");
    assert!(!err.contains(token), "the token reached the log");
    let y4m = Y4m::parse(&out);
    assert!(centre_cr(&y4m, &y4m.frames[0]) < 120, "untinted at first");
    assert!(
        centre_cr(&y4m, y4m.frames.last().unwrap()) > 125,
        "the OSC sent over HTTP tinted the picture"
    );
}

#[test]
fn the_http_api_is_refused_on_a_network_without_a_private_token() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token_file(dir.path(), 0o644);
    let run = |args: &[&str]| {
        run_with_limit(
            lucid().args(["--no-preview", "--duration", "1"]).args(args),
            LIMIT,
        )
    };
    let out = run(&["--http", "0.0.0.0:0"]);
    assert_one_clear_error(&out, 2, "add --http-token-file");
    let out = run(&[
        "--http",
        "0.0.0.0:0",
        "--http-token-file",
        token_file.to_str().unwrap(),
    ]);
    assert_one_clear_error(&out, 2, "can be read by other users");
    assert!(!stderr_of(&out).contains("0123456789"), "the token leaked");
}

#[test]
fn the_web_remote_in_chromium_shows_the_show_and_its_controls_change_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = write_token_file(dir.path(), 0o600);
    let token = TOKEN;
    let port = free_tcp_port();
    let mut child = lucid()
        .args([
            "--no-preview",
            "--width",
            "320",
            "--height",
            "180",
            "--duration",
            "60",
        ])
        .args(["--effect", "tint:color=#ff0000,amount=0"])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .arg("--http-token-file")
        .arg(&token_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect_stderr(&mut child);
    // A browser's Basic login (any user name, the token as the password).
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("remote:{token}"))
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/browser.py");
    let browser = run_with_limit(
        std::process::Command::new(support::whep::peer_python())
            .arg(&script)
            .arg(format!("http://127.0.0.1:{port}/"))
            .arg(&basic),
        Duration::from_secs(120),
    );
    let seen = String::from_utf8_lossy(&browser.stdout).into_owned();
    assert!(
        browser.status.success(),
        "Chromium: {seen}\n{}",
        stderr_of(&browser)
    );
    let seen: serde_json::Value = serde_json::from_str(seen.trim()).unwrap();
    assert!(
        seen["state"].as_str().unwrap().contains("playing"),
        "{seen}"
    );
    assert!(
        seen["sliders"].as_u64().unwrap() >= 2,
        "mix and amount: {seen}"
    );
    assert!(
        seen["red_after"].as_f64().unwrap() > seen["red_before"].as_f64().unwrap() + 20.0,
        "the thumbnail showed the tint the slider asked for: {seen}"
    );
    assert_eq!(seen["freeze_on"], true, "{seen}");
    // What the page did is what the show does.
    let show: serde_json::Value = serde_json::from_str(
        &reqwest::blocking::Client::new()
            .get(format!("http://127.0.0.1:{port}/api/show"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(show["values"]["/lucid/freeze"][0], 1.0, "{show}");
    assert_eq!(show["values"]["/lucid/effect/0/amount"][0], 1.0, "{show}");
    send_signal(child.id(), "INT");
    let status = wait_with_limit(&mut child, Duration::from_secs(20));
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
}

#[test]
fn a_flood_of_osc_and_http_requests_is_counted_and_never_holds_the_show_up() {
    let port = free_udp_port();
    let http_port = free_tcp_port();
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.jsonl");
    let mut cmd = lucid();
    cmd.args([
        "--no-preview",
        "--pipe",
        "y4m",
        "--width",
        "160",
        "--height",
        "90",
    ])
    .args(["--effect", "tint:color=#ff0000,amount=0", "--duration", "6"])
    .args(["--osc", &port.to_string()])
    .args(["--http", &format!("127.0.0.1:{http_port}")])
    .arg("--stats-json")
    .arg(&stats);
    let (mut child, out, err) = spawn_piped(&mut cmd);
    wait_for_presented(&stats, 15);
    // 20 000 OSC bundles of 40 messages each, as fast as the sender goes (the kernel drops
    // some before Lucid reads them: only Lucid's own count is asserted).
    let bundle = rosc::OscPacket::Bundle(rosc::OscBundle {
        timetag: rosc::OscTime::from((0, 1)),
        content: (0..40)
            .map(|_| {
                rosc::OscPacket::Message(rosc::OscMessage {
                    addr: "/lucid/effect/tint/amount".into(),
                    args: vec![rosc::OscType::Float(0.0)],
                })
            })
            .collect(),
    });
    let bytes = rosc::encoder::encode(&bundle).unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..20_000 {
        let _ = socket.send_to(&bytes, ("127.0.0.1", port));
    }
    // And 200 HTTP requests at once, from 8 threads.
    let url = format!("http://127.0.0.1:{http_port}/api/osc");
    let codes: Vec<u16> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let url = url.clone();
                s.spawn(move || {
                    let http = reqwest::blocking::Client::new();
                    (0..25)
                        .map(|_| {
                            http.post(&url)
                                .header("Content-Type", "application/json")
                                .body(r#"{"address": "/lucid/effect/tint/amount", "args": [0.0]}"#)
                                .send()
                                .map_or(0, |r| r.status().as_u16())
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    assert!(
        codes.iter().all(|c| *c == 200 || *c == 503),
        "every request answered, applied or busy: {codes:?}"
    );
    // Still steerable: this one lands.
    osc(port, "/lucid/effect/tint/amount", 1.0);
    let status = wait_with_limit(&mut child, Duration::from_secs(60));
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{err}");
    let y4m = Y4m::parse(&out);
    // Six seconds at 30 fps: the show went on through the flood (a loop held up by it
    // would have come short by the flood's length).
    assert!(
        y4m.frames.len() >= 150,
        "{} frames: {err}",
        y4m.frames.len()
    );
    assert!(
        centre_cr(&y4m, y4m.frames.last().unwrap()) > 125,
        "the last message applied"
    );
    let s = last_stats(&stats);
    let c = &s["control"];
    let heard = c["osc_received"].as_u64().unwrap() + c["osc_dropped"].as_u64().unwrap();
    assert!(heard > 1000, "{s}");
    assert!(heard <= 20_000 * 40 + 1, "{s}");
    assert_eq!(
        c["http_busy"].as_u64().unwrap(),
        codes.iter().filter(|c| **c == 503).count() as u64,
        "{s}"
    );
}

#[test]
fn a_restored_daydream_cue_is_sent_to_the_stream_again() {
    use support::daydream::{FakeDaydream, KEY};
    use support::whep::WhepPeer;
    let peer = WhepPeer::start(&[]);
    let fake = FakeDaydream::start(Some(peer.url()));
    let dir = tempfile::tempdir().unwrap();
    let cues = dir.path().join("cues.ron");
    std::fs::write(
        &cues,
        r#"(cues: [
            (name: "lake", prompt: "a quiet lake"),
            (name: "forest", prompt: "a misty forest"),
            (name: "city", prompt: "a burning city"),
        ])"#,
    )
    .unwrap();
    let state = dir.path().join("show.state");
    let stats = dir.path().join("stats.jsonl");
    let port = free_udp_port();
    let show = |extra: &[&str]| {
        let mut cmd = lucid();
        cmd.env("DAYDREAM_API_KEY", KEY)
            .args([
                "--daydream-api",
                &fake.url(),
                "--daydream-stream",
                "str_existing",
            ])
            .arg("--cues")
            .arg(&cues)
            .arg("--state")
            .arg(&state)
            .arg("--stats-json")
            .arg(&stats)
            .args(["--no-preview", "--pipe", "y4m"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        cmd
    };
    // Cue 3 over OSC's new address; the state keeps it.
    let mut child = show(&["--osc", &port.to_string()]).spawn().unwrap();
    let err = collect_stderr(&mut child);
    wait_for_presented(&stats, 10);
    osc(port, "/lucid/cue/3", 0.0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&state)
        .unwrap_or_default()
        .contains("cue: Some(2)")
    {
        assert!(std::time::Instant::now() < deadline, "cue 3 never kept");
        std::thread::sleep(Duration::from_millis(100));
    }
    send_signal(child.id(), "KILL");
    let _ = wait_with_limit(&mut child, Duration::from_secs(10));
    drop(err.join());
    let before = fake.with_method("PATCH").len();
    assert!(
        fake.with_method("PATCH")
            .iter()
            .any(|p| p.json()["params"]["prompt"] == "a burning city"),
        "cue 3 reached Daydream"
    );
    // The restart steers the stream back to cue 3 by itself.
    let mut child = show(&["--duration", "3"]).spawn().unwrap();
    let err = collect_stderr(&mut child);
    let status = wait_with_limit(&mut child, Duration::from_secs(60));
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("cue 3"), "{err}");
    let again = fake.with_method("PATCH");
    assert!(
        again[before..]
            .iter()
            .any(|p| p.json()["params"]["prompt"] == "a burning city"),
        "the restored cue was sent again: {} PATCHes after the restart",
        again.len() - before
    );
}

/// Seconds into today, UTC (the children below run with `TZ=UTC`).
fn utc_seconds_of_day() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 86_400
}

/// Waits for the next whole second of the wall clock: the second (UTC, into the day) and
/// the instant it began, so times in a schedule are times on the test's own clock.
fn next_whole_second() -> (u64, std::time::Instant) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()),
    ));
    ((now.as_secs() + 1) % 86_400, std::time::Instant::now())
}

/// `HH:MM:SS` of a second of the day (wrapping past midnight).
fn clock(seconds: u64) -> String {
    let s = seconds % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[test]
fn out_of_hours_no_request_reaches_the_sources_and_the_stats_say_when_it_opens() {
    let live = LiveOrigin::start(OriginOptions::default());
    let layer = LiveOrigin::start(OriginOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let stats = temp_path(&dir, "stats.jsonl");
    // Opens in two hours, for an hour: now is out of hours, whatever the time of day.
    let now = utc_seconds_of_day();
    let opens = (now / 60 + 120) * 60;
    let hours = format!("{}-{}", &clock(opens)[..5], &clock(opens + 3600)[..5]);
    let before = live.origin.requests.lock().unwrap().len();
    assert_eq!(before, 0);
    let mut child = lucid()
        .env("TZ", "UTC")
        .args([
            "--url",
            &live.master_url(),
            "--no-preview",
            "--schedule",
            &hours,
        ])
        .args(["--layer", &layer.master_url()])
        .arg("--stats-json")
        .arg(&stats)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let err = collect_stderr(&mut child);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while newest_stats(&stats).is_none_or(|s| s["uptime_s"].as_f64() < Some(4.0)) {
        assert!(std::time::Instant::now() < deadline, "no stats");
        std::thread::sleep(Duration::from_millis(100));
    }
    send_signal(child.id(), "TERM");
    let status = wait_with_limit(&mut child, LIMIT);
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    let s = last_stats(&stats);
    assert_eq!(s["schedule"], "off", "{s}");
    assert_eq!(s["state"], "closed", "{s}");
    assert_eq!(s["presented"], 0, "{s}");
    let next = s["schedule_next_change"].as_str().unwrap_or_default();
    assert!(
        next.ends_with(&format!("T{}+00:00", clock(opens))),
        "opens at {}: {s}",
        clock(opens)
    );
    assert_eq!(s["layers"][0]["state"], "closed", "{s}");
    for origin in [&live, &layer] {
        let requests = origin.origin.requests.lock().unwrap().clone();
        assert!(requests.is_empty(), "out of hours, yet: {requests:?}");
    }
}

#[test]
fn hours_that_begin_and_end_open_and_close_the_sources_twice() {
    let live = LiveOrigin::start(OriginOptions::default());
    let layer = LiveOrigin::start(OriginOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let (stats, record) = (temp_path(&dir, "stats.jsonl"), temp_path(&dir, "show.mp4"));
    // Two openings of 8 s, 6 s apart, starting 10 s from now (time for a loaded machine
    // to start the renderer first).
    let (t0, start) = next_whole_second();
    let at = |s: u64| start + Duration::from_secs(s);
    let hours = format!(
        "{}-{}, {}-{}",
        clock(t0 + 10),
        clock(t0 + 18),
        clock(t0 + 24),
        clock(t0 + 32)
    );
    let mut child = lucid()
        .env("TZ", "UTC")
        .args(["--url", &live.master_url(), "--no-preview", "--fade", "0.5"])
        .args(["--schedule", &hours, "--layer", &layer.master_url()])
        .arg("--stats-json")
        .arg(&stats)
        .arg("--record")
        .arg(&record)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(temp_path(&dir, "log")).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(temp_path(&dir, "log")).unwrap_or_default();
    let requests =
        || live.origin.requests.lock().unwrap().len() + layer.origin.requests.lock().unwrap().len();
    let layer_shown = || {
        newest_stats(&stats)
            .and_then(|s| s["layers"][0]["shown"].as_u64())
            .unwrap_or(0)
    };
    let sleep_until = |t: std::time::Instant| {
        std::thread::sleep(t.saturating_duration_since(std::time::Instant::now()))
    };
    let presented = || {
        newest_stats(&stats)
            .and_then(|s| s["presented"].as_u64())
            .unwrap_or(0)
    };
    // Before the first opening: nothing asked of the origin.
    sleep_until(at(9));
    assert_eq!(requests(), 0, "before hours");
    if let Some(s) = newest_stats(&stats) {
        assert_eq!(s["state"], "closed", "{s}");
    }
    // In hours: it plays.
    sleep_until(at(17));
    let first_run = presented();
    assert!(first_run > 30, "frames in the first opening: {first_run}");
    assert!(layer_shown() > 10, "the layer plays too");
    assert_eq!(newest_stats(&stats).unwrap()["schedule"], "on");
    // Closed (after a 0.5 s fade; a request under way may finish): no request from 2 s
    // after the end to the next opening.
    sleep_until(at(20));
    let (asked, shown, layer_was) = (requests(), presented(), layer_shown());
    sleep_until(at(23) + Duration::from_millis(500));
    assert_eq!(
        requests(),
        asked,
        "requests while closed: the stream's {:?}, the layer's {:?}\n{}",
        live.origin.requests.lock().unwrap(),
        layer.origin.requests.lock().unwrap(),
        log()
    );
    assert_eq!(presented(), shown, "frames while closed");
    let s = newest_stats(&stats).unwrap();
    assert_eq!(
        (s["schedule"].clone(), s["state"].clone()),
        ("off".into(), "closed".into())
    );
    // The second opening plays again.
    sleep_until(at(31));
    assert!(requests() > asked, "the source opened again");
    assert!(presented() > shown + 30, "frames in the second opening");
    assert!(layer_shown() > layer_was + 10, "the layer plays again");
    sleep_until(at(34));
    send_signal(child.id(), "TERM");
    let status = wait_with_limit(&mut child, LIMIT);
    assert!(status.success(), "{}", log());
    // The recording goes on across the closed hours: its times keep rising, with a gap
    // about as long as the source was closed, and its frames fade to black before it.
    let mut frames: Vec<(f64, u8)> = Vec::new();
    decode_timed(&record, |t, f| {
        let (w, h) = (f.width() as usize, f.height() as usize);
        let (stride, y) = (f.stride(0), f.data(0));
        let centre = y[h / 2 * stride + w / 2];
        frames.push((t, centre));
    });
    let gaps: Vec<(f64, f64)> = frames
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 > 1.0)
        .map(|w| (w[0].0, w[1].0 - w[0].0))
        .collect();
    assert!(frames.windows(2).all(|w| w[1].0 > w[0].0), "times rise");
    assert_eq!(gaps.len(), 1, "one closed stretch: {gaps:?}");
    assert!(
        (4.0..10.0).contains(&gaps[0].1),
        "the gap is the closed time: {gaps:?}"
    );
    let before_gap: Vec<u8> = frames
        .iter()
        .filter(|(t, _)| *t <= gaps[0].0)
        .map(|(_, y)| *y)
        .collect();
    let last = *before_gap.last().unwrap();
    assert!(last <= 20, "faded to black before closing: luma {last}");
    assert!(
        before_gap.iter().any(|y| *y > 40),
        "a picture before the fade: {before_gap:?}"
    );
}

#[test]
fn a_malformed_schedule_is_a_usage_error_naming_the_bad_part() {
    let out = run_with_limit(
        lucid().args([
            "--no-preview",
            "--schedule",
            "mon-fri 09:00-18:00, sta 10:00-16:00",
        ]),
        LIMIT,
    );
    assert_one_clear_error(&out, 2, "in \"sta 10:00-16:00\": \"sta\" is not a day");
    let out = run_with_limit(
        lucid().args(["--no-preview", "--schedule", "09:00-25:00"]),
        LIMIT,
    );
    assert_one_clear_error(&out, 2, "\"25:00\" is not a time of day");
}
