//! Hostile input, hard stops and the error model (issue 8): crafted playlists and segments
//! from real HTTP servers on 127.0.0.1, signals in every waiting state, crashes and kills
//! during a recording, outputs that stall, files that must not be destroyed, effect
//! folders with traps, credentials that must not be printed, and HLS as real servers
//! write it.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;

const LIMIT: Duration = Duration::from_secs(90);

/// Plays `url` headless with a 2 s `--wait`: for input that must fail, and fail soon.
fn give_up_soon(url: &str) -> std::process::Output {
    run_with_limit(
        lucid().args(["--no-preview", "--wait", "2", "--url", url]),
        LIMIT,
    )
}

/// A directory served over HTTP with `files` in it.
fn serve(files: &[(&str, &[u8])]) -> (tempfile::TempDir, Origin) {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let origin = Origin::serve(dir.path());
    (dir, origin)
}

/// Marked 320x180 video cut into 1 s MPEG-TS segments (a finished VOD), in `dir`.
fn vod_segments(dir: &Path, seconds: u32) -> Vec<String> {
    support::scripted::make_segments(dir, "v", 0, 640, 360, seconds)
        .into_iter()
        .map(|e| e.file.file_name().unwrap().to_string_lossy().to_string())
        .collect()
}

/// Plays `url` headless into `--pipe y4m` with `extra` flags; it must exit 0.
fn play_to_y4m(url: &str, extra: &[&str]) -> Y4m {
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "y4m", "--url", url])
            .args(extra),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    Y4m::parse(&out.stdout)
}

/// A raw HTTP server on 127.0.0.1 for answers tiny_http cannot give (endless or trickling
/// bodies). `answer` gets each connection, its request head and the stop flag. It runs until
/// dropped, and at most 60 s: bounded even if a test fails.
struct RawServer {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawServer {
    fn start(answer: impl Fn(TcpStream, &str, &AtomicBool) + Send + 'static) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            listener.set_nonblocking(true).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                let mut head = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    head.push_str(&line);
                    line.clear();
                }
                answer(conn, &head, &s);
            }
        });
        RawServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// 1. Playlist values are data, not trust.

#[test]
fn absurd_playlist_numbers_are_clear_errors_not_panics() {
    let cases: [(&str, &str); 3] = [
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:18446744073709551615\n#EXTINF:2,\na.ts\n",
            "TARGETDURATION",
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:18446744073709551614\n\
             #EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n",
            "MEDIA-SEQUENCE",
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n\
             #EXT-X-BYTERANGE:1000@18446744073709551000\na.ts\n",
            "BYTERANGE",
        ),
    ];
    for (text, needle) in cases {
        let (_dir, origin) = serve(&[("x.m3u8", text.as_bytes())]);
        let out = give_up_soon(&origin.url("x.m3u8"));
        assert_one_clear_error(&out, 5, needle);
    }
}

/// A 200 answer that is neither a playlist nor a known "not live yet" answer (a misspelt
/// URL that serves a text file) ends the run at once with what the server said, instead of
/// being waited on for the whole `--wait`. MistServer's "Stream open failed" is still waited
/// on (`faults.rs`, stream_open_failed_and_an_empty_playlist_count_as_not_live_yet).
#[test]
fn a_text_file_where_a_playlist_should_be_ends_the_run_at_once() {
    let (_dir, origin) = serve(&[("notes.m3u8", b"Hello! These are my notes.\n")]);
    assert_ends_at_once(&origin.url("notes.m3u8"), 5, "Hello! These are my notes.");
}

/// A server whose redirects go round in a loop ends the run at once with exit 4 (the
/// server answered, and will answer the same), for HLS and for WHEP alike, instead of
/// being retried for the whole `--wait` as a host that cannot be reached (exit 3).
#[test]
fn a_redirect_loop_ends_the_run_at_once_with_exit_4() {
    let server = RawServer::start(|mut conn, head, _| {
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let _ = write!(
            conn,
            "HTTP/1.1 302 Found\r\nLocation: {path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    });
    for path in ["live/index.m3u8", "live/whep"] {
        assert_ends_at_once(&server.url(path), 4, "redirect");
    }
}

/// Plays `url` with a 60 s `--wait`: an answer that will not change must end the run at
/// once (well within 15 s) with one clear error, `code` and `needle`.
fn assert_ends_at_once(url: &str, code: i32, needle: &str) {
    let started = Instant::now();
    let out = run_with_limit(
        lucid().args(["--no-preview", "--wait", "60", "--url", url]),
        Duration::from_secs(45),
    );
    assert_one_clear_error(&out, code, needle);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{url}: waited {:?} on an answer that will not change",
        started.elapsed()
    );
}

// 2. Size caps.

#[test]
fn an_endless_playlist_body_is_cut_off_at_its_cap() {
    let server = RawServer::start(|mut conn, _, stop| {
        let _ = conn.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.apple.mpegurl\r\n\r\n#EXTM3U\n",
        );
        // At most 1 GiB, then the connection closes: bounded even if Lucid never stops.
        let chunk = "#EXT-X-PADDING:xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n".repeat(1024);
        for _ in 0..(1 << 30) / chunk.len() {
            if stop.load(Ordering::Relaxed) || conn.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let out = give_up_soon(&server.url("endless.m3u8"));
    drop(server);
    assert_one_clear_error(&out, 5, "larger than 4194304 bytes");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

// 3. FFmpeg opens only what Lucid means.

#[test]
fn a_segment_that_is_a_playlist_opens_nothing_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::serve(dir.path());
    let bait = format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{}\n#EXT-X-ENDLIST\n",
        origin.url("bait.ts")
    );
    std::fs::write(dir.path().join("seg.ts"), bait).unwrap();
    std::fs::write(
        dir.path().join("media.m3u8"),
        "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nseg.ts\n#EXT-X-ENDLIST\n",
    )
    .unwrap();
    let out = run_with_limit(
        lucid().args(["--no-preview", "--url", &origin.url("media.m3u8")]),
        LIMIT,
    );
    let requests = origin.requests.lock().unwrap().clone();
    assert!(
        !requests.iter().any(|r| r.contains("bait")),
        "the segment's own playlist was followed: {requests:?}\n{}",
        stderr_of(&out)
    );
    assert_one_clear_error(&out, 5, "could not be demuxed");
}

// 4. Video sizes.

#[test]
fn video_beyond_the_texture_limit_is_scaled_down_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("wide.nut");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=16448x16:rate=30")
        .args(["-frames:v", "3", "-c:v", "rawvideo", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--pipe", "y4m", "--url"])
            .arg(&clip),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    let y4m = Y4m::parse(&out.stdout);
    assert_eq!((y4m.width, y4m.height), (8192, 8), "{err}");
    assert_eq!(y4m.frames.len(), 3);
    assert_eq!(
        err.matches("scaling it to 8192x8").count(),
        1,
        "said once: {err}"
    );
}

// 5. Panics end cleanly; recordings survive a kill.

#[test]
fn a_panic_still_finalizes_the_recording_and_exits_70() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crash.mp4");
    let out = run_with_limit(
        lucid()
            .env("LUCID_TEST_PANIC_AFTER_FRAMES", "45")
            .args(["--no-preview", "--record"])
            .arg(&file),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(70), "{err}");
    // Lucid's own error is the last line (the renderer may log "error:" lines of its own).
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: internal error in thread lucid-decode"),
        "{err}"
    );
    assert_eq!(
        err.matches("internal error").count(),
        1,
        "reported once: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let frames = ffprobe_frames(&file);
    assert!(frames >= 30, "{frames} frames in the recording; {err}");
}

#[test]
fn a_recording_killed_with_sigkill_still_plays() {
    for name in ["killed.mp4", "killed.mkv"] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(name);
        let mut child = lucid()
            .args(["--no-preview", "--record"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Long enough for a few one-second fragments on a loaded machine.
        std::thread::sleep(Duration::from_secs(6));
        send_signal(child.id(), "KILL");
        wait_with_limit(&mut child, Duration::from_secs(10));
        // FFmpeg's own reader, which tolerates the cut-off end as players do.
        let frames = ffprobe_frames(&file);
        assert!(frames >= 30, "{name}: {frames} frames survived");
    }
}

#[test]
fn a_closed_stderr_does_not_stop_a_render() {
    // `lucid ... 2>&1 | head`, or a log collector that dies: the show goes on, and the
    // recording is whole (the logger used to panic on the broken pipe: exit 101).
    let dir = tempfile::tempdir().unwrap();
    let clip = marked_clip(dir.path(), 320, 180, 2.0, "mp4", &X264_FAST);
    let file = dir.path().join("out.mkv");
    let mut child = lucid()
        .args(["--no-preview", "--url"])
        .arg(&clip)
        .arg("--record")
        .arg(&file)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = wait_with_limit(&mut child, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    assert_eq!(ffprobe_frames(&file), 60);
}

/// How many video frames FFmpeg's `ffprobe` decodes from a file (0 when it cannot open it).
fn ffprobe_frames(path: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "quiet", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

// 6. Stops are prompt.

/// Starts `cmd`, lets it reach its state for `settle`, sends SIGTERM and returns how long
/// it took to exit and how.
fn stop_after(cmd: &mut Command, settle: Duration) -> (Duration, std::process::ExitStatus, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    std::thread::sleep(settle);
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running before the signal"
    );
    let sent = Instant::now();
    send_signal(child.id(), "TERM");
    let status = wait_with_limit(&mut child, Duration::from_secs(20));
    (sent.elapsed(), status, log.join().unwrap())
}

fn assert_prompt(label: &str, (took, status, log): (Duration, std::process::ExitStatus, String)) {
    assert!(
        took <= Duration::from_millis(1000),
        "{label}: SIGTERM took {took:?}\n{log}"
    );
    assert!(status.success(), "{label}: {status}\n{log}");
}

#[test]
fn sigterm_ends_lucid_within_a_second_in_every_waiting_state() {
    // Connecting: a server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/x.m3u8",
        silent.local_addr().unwrap().port()
    );
    assert_prompt(
        "connecting",
        stop_after(
            lucid().args(["--no-preview", "--url", &url]),
            Duration::from_secs(2),
        ),
    );
    // Waiting for a stream that is not live yet (404), between polls.
    let (_dir, origin) = serve(&[]);
    assert_prompt(
        "waiting",
        stop_after(
            lucid().args(["--no-preview", "--url", &origin.url("none.m3u8")]),
            Duration::from_secs(3),
        ),
    );
    // A segment body streaming slowly: one byte every 100 ms.
    let slow = RawServer::start(|mut conn, head, stop| {
        if head.contains(".m3u8") {
            let body = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nslow.ts\n";
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            return;
        }
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
        while !stop.load(Ordering::Relaxed) && conn.write_all(&[0x47]).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert_prompt(
        "segment streaming",
        stop_after(
            lucid().args(["--no-preview", "--url", &slow.url("live.m3u8")]),
            Duration::from_secs(3),
        ),
    );
    drop(slow);
    // A --stats-json FIFO that nobody reads, while recording the test pattern.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stats.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let file = dir.path().join("fifo.mp4");
    let result = stop_after(
        lucid()
            .args(["--no-preview", "--stats-json"])
            .arg(&fifo)
            .arg("--record")
            .arg(&file),
        Duration::from_secs(4),
    );
    assert_prompt("blocked stats file", result);
    let mut frames = 0;
    decode_file(&file, |_| frames += 1);
    assert!(frames > 0, "the recording was finalized");
    // An RTMP receiver that accepts the connection and never reads: RTMP's handshake
    // waits on it for FFmpeg's whole 5 s timeout unless finishing cuts it off. The
    // recording beside it is still finalized.
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let rtmp = format!(
        "rtmp://127.0.0.1:{}/live/key",
        receiver.local_addr().unwrap().port()
    );
    let file = dir.path().join("beside-rtmp.mp4");
    let result = stop_after(
        lucid()
            .args(["--no-preview", "--output", &rtmp, "--record"])
            .arg(&file),
        Duration::from_secs(4),
    );
    assert_prompt("rtmp receiver not reading", result);
    let mut frames = 0;
    decode_file(&file, |_| frames += 1);
    assert!(frames > 0, "the recording beside it was finalized");
}

#[test]
fn sigterm_during_playlist_retry_backoff_finalizes_the_recording_within_a_second() {
    let live = LiveOrigin::start(OriginOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backoff.mp4");
    let mut child = lucid()
        .args(["--no-preview", "--url", &live.master_url(), "--record"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    std::thread::sleep(Duration::from_secs(4));
    // The playlist starts failing: Lucid backs off between reloads (up to 4 s apart).
    live.origin.fault("high.m3u8", Fault::Status(503));
    std::thread::sleep(Duration::from_secs(4));
    let sent = Instant::now();
    send_signal(child.id(), "TERM");
    let status = wait_with_limit(&mut child, Duration::from_secs(20));
    let took = sent.elapsed();
    let log = log.join().unwrap();
    assert!(
        log.contains("reloading playlist: HTTP 503"),
        "in backoff: {log}"
    );
    assert!(
        took <= Duration::from_millis(1000),
        "SIGTERM took {took:?}\n{log}"
    );
    assert!(status.success(), "{status}\n{log}");
    let frames = ffprobe_frames(&file);
    assert!(
        frames >= 60,
        "{frames} frames in the finalized recording\n{log}"
    );
}

#[test]
fn a_second_signal_exits_at_once_with_130() {
    // The first stop must still be under way when the second signal is handled: an RTMP
    // receiver that never answers holds it for the network output's finishing grace (over
    // half a second). A stop while merely waiting for a stream could end in one 20 ms
    // poll, before the second signal was handled (exit 0: seen on a loaded machine).
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let rtmp = format!(
        "rtmp://127.0.0.1:{}/live/key",
        receiver.local_addr().unwrap().port()
    );
    let mut child = lucid()
        .args(["--no-preview", "--output", &rtmp])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // Two different signals, back to back: the kernel does not merge them. One shell
    // sends both with its builtin `kill`.
    let pid = child.id();
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -INT {pid} && kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130), "{status}");
}

// 7. Outputs don't hold each other.

#[test]
fn a_stalled_pipe_reader_costs_the_recording_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rec.mp4");
    let stats = dir.path().join("stats.jsonl");
    // stdout is a pipe nobody reads: it fills after the first frames, then the pipe's queue
    // (128 MiB: about 97 frames of 720p YUV) fills too.
    let mut child = lucid()
        .args([
            "--no-preview",
            "--pipe",
            "y4m",
            "--duration",
            "5",
            "--stats-json",
        ])
        .arg(&stats)
        .arg("--record")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    let _unread = child.stdout.take();
    let status = wait_with_limit(&mut child, Duration::from_secs(30));
    let log = log.join().unwrap();
    assert!(status.success(), "{log}");
    let last = last_stats(&stats);
    let presented = last["presented"].as_u64().unwrap();
    assert!(presented >= 145, "5 s at 30 fps: {last}");
    let frames = ffprobe_frames(&file);
    assert_eq!(
        frames, presented,
        "every presented frame is in the recording\n{log}"
    );
    assert_eq!(last["outputs"]["record"]["dropped"], 0, "{last}");
    assert!(
        last["outputs"]["pipe"]["dropped"].as_u64().unwrap() > 0,
        "{last}"
    );
}

// 8. Files.

#[test]
fn record_never_destroys_a_file_and_creates_nothing_before_the_stream_opens() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("last-night.mp4");
    std::fs::write(&existing, b"the only copy").unwrap();
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--duration", "1", "--record"])
            .arg(&existing),
        LIMIT,
    );
    assert_one_clear_error(&out, 7, "pass --overwrite");
    assert_eq!(std::fs::read(&existing).unwrap(), b"the only copy");
    let out = run_with_limit(
        lucid()
            .args(["--no-preview", "--duration", "1", "--overwrite", "--record"])
            .arg(&existing),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let mut frames = 0;
    decode_file(&existing, |_| frames += 1);
    assert!(frames > 10);
    // A stream that never opens leaves no file behind.
    let (_d, origin) = serve(&[]);
    let never = dir.path().join("never.mp4");
    let out = run_with_limit(
        lucid()
            .args([
                "--no-preview",
                "--wait",
                "1",
                "--url",
                &origin.url("none.m3u8"),
                "--record",
            ])
            .arg(&never),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr_of(&out));
    assert!(
        !never.exists(),
        "nothing is created before the stream opens"
    );
    // `pipe:1.mkv` is a file name, not FFmpeg's stdout.
    let out = run_with_limit(
        lucid().current_dir(dir.path()).args([
            "--no-preview",
            "--duration",
            "1",
            "--record",
            "pipe:1.mkv",
        ]),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    assert!(dir.path().join("pipe:1.mkv").metadata().unwrap().len() > 1000);
}

// 9. Effects folder.

#[test]
fn an_effects_folder_with_a_fifo_and_dev_zero_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(dir.path().join("trap.wgsl"))
            .status()
            .unwrap()
            .success()
    );
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.wgsl")).unwrap();
    let out = run_with_limit(
        lucid()
            .arg("--list-effects")
            .arg("--effects-dir")
            .arg(dir.path()),
        Duration::from_secs(20),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(text.contains("not a regular file"), "{text}");
}

/// Scenes and presets are read as cue files are: a regular file of at most 1 MiB (a FIFO
/// or `/dev/zero` is refused at once, never read or waited on), at most 32 layers and 32
/// effects a chain, every number finite and in range, and no field Lucid does not know.
/// Each mistake is one usage error (exit 2) before anything starts.
#[test]
fn scene_and_preset_files_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("trap.ron");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let layer = "(source: \"a.png\")";
    let many_layers = format!("(layers: [{}])", vec![layer; 33].join(", "));
    let tint = "(effect: \"tint\")";
    let many_effects = format!("(effects: [{}])", vec![tint; 33].join(", "));
    let huge = format!("(source: \"{}\")", "x".repeat(2 << 20));
    let cases: Vec<(&str, String, &str)> = vec![
        ("--scene", "/dev/zero".into(), "not a regular file"),
        ("--preset", "/dev/zero".into(), "not a regular file"),
        (
            "--scene",
            fifo.to_str().unwrap().into(),
            "not a regular file",
        ),
        (
            "--preset",
            fifo.to_str().unwrap().into(),
            "not a regular file",
        ),
        ("--scene", file("huge.ron", &huge), "larger than 1024 KiB"),
        ("--scene", file("layers.ron", &many_layers), "at most 32"),
        ("--preset", file("effects.ron", &many_effects), "at most 32"),
        ("--scene", file("effects.ron", &many_effects), "at most 32"),
        (
            "--scene",
            file("typo.ron", "(layers: [(source: \"a.png\", opacityy: 0.5)])"),
            "opacityy",
        ),
        (
            "--preset",
            file("typo-preset.ron", "(effects: [], colour_grade: 1)"),
            "colour_grade",
        ),
        (
            "--scene",
            file(
                "nan.ron",
                "(layers: [(source: \"a.png\", transform: (rotate: NaN))])",
            ),
            "rotate NaN",
        ),
        (
            "--scene",
            file(
                "inf.ron",
                "(layers: [(source: \"a.png\", transform: (x: inf))])",
            ),
            "x inf",
        ),
        (
            "--scene",
            file(
                "far.ron",
                "(layers: [(source: \"a.png\", transform: (y: 1e30))])",
            ),
            "is not -2 to 2",
        ),
        (
            "--scene",
            file("fader.ron", "(crossfader: (target: NaN))"),
            "crossfader",
        ),
    ];
    for (flag, path, needle) in &cases {
        let started = Instant::now();
        let out = run_with_limit(
            lucid().args(["--no-preview", flag, path]),
            Duration::from_secs(30),
        );
        assert_one_clear_error(&out, 2, needle);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{flag} {path}: took {:?}",
            started.elapsed()
        );
    }
    // --layer counts with the scene's layers against the cap.
    let mut args = vec!["--no-preview".to_string()];
    for _ in 0..33 {
        args.extend(["--layer".into(), "a.png".into()]);
    }
    let out = run_with_limit(lucid().args(&args), Duration::from_secs(30));
    assert_one_clear_error(&out, 2, "a show holds at most 32");
}

// 10. Secrets stay out of logs.

#[test]
fn tokens_and_passwords_never_reach_logs_or_stats() {
    let live = LiveOrigin::start(OriginOptions {
        vod_seconds: Some(3.0),
        ..OriginOptions::default()
    });
    // A segment that fails makes the client log the URLs it tried.
    live.origin.fault("high_00001.ts", Fault::Status(404));
    let dir = tempfile::tempdir().unwrap();
    let stats = dir.path().join("stats.jsonl");
    let url = format!(
        "http://viewer:PASSWORD123@127.0.0.1:{}/master.m3u8?tkn=TOKEN456&jwt=JWT789&mTrack=0",
        live.origin.port
    );
    let out = run_with_limit(
        lucid()
            .args([
                "--no-preview",
                "--url",
                &url,
                "--pipe",
                "y4m",
                "--stats-json",
            ])
            .arg(&stats),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("skipping segment"),
        "the failure was logged: {err}"
    );
    let json = std::fs::read_to_string(&stats).unwrap();
    for secret in ["PASSWORD123", "TOKEN456", "JWT789"] {
        assert!(!err.contains(secret), "{secret} in the log:\n{err}");
        assert!(!json.contains(secret), "{secret} in the stats:\n{json}");
    }
    assert!(json.contains("tkn=***"), "{json}");
}

// 11. HLS as the spec says.

#[test]
fn a_vod_playlist_without_endlist_plays_from_start_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let segs = vod_segments(dir.path(), 3);
    let mut text = String::from(
        "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:1\r\n#EXT-X-PLAYLIST-TYPE:VOD\r\n",
    );
    for s in &segs {
        text.push_str(&format!("#EXTINF:1.000000,\r\n{s}?mTrack=0&jwt=x\r\n"));
    }
    std::fs::write(dir.path().join("vod.m3u8"), text).unwrap();
    let origin = Origin::serve(dir.path());
    let markers = play_to_y4m(&origin.url("vod.m3u8"), &["--wait", "5"]).markers();
    assert_eq!(markers.first(), Some(&0), "starts at the first segment");
    assert_eq!(markers.len(), 90, "every frame of three segments");
}

/// A recording playlist as go-livepeer writes one for a long session: a VOD with
/// discontinuities between sessions and a target duration of 2100 s (its longest
/// segment). Lucid plays it from start to end instead of refusing the target duration.
#[test]
fn a_livepeer_recording_playlist_with_a_long_target_duration_plays() {
    let dir = tempfile::tempdir().unwrap();
    let segs = vod_segments(dir.path(), 3);
    let mut text = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-TARGETDURATION:2100\n",
    );
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        text.push_str(&format!("#EXTINF:1.000,\n{s}\n"));
    }
    text.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(dir.path().join("recording.m3u8"), text).unwrap();
    let origin = Origin::serve(dir.path());
    let markers = play_to_y4m(&origin.url("recording.m3u8"), &["--wait", "5"]).markers();
    assert_eq!(markers.first(), Some(&0), "starts at the first segment");
    assert_eq!(markers.len(), 90, "every frame of three sessions");
}

#[test]
fn gap_segments_are_never_fetched_and_hold_the_picture_without_a_stall() {
    let dir = tempfile::tempdir().unwrap();
    let segs = vod_segments(dir.path(), 3);
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:8\n#EXT-X-TARGETDURATION:1\n");
    for (i, s) in segs.iter().enumerate() {
        if i == 1 {
            text.push_str("#EXT-X-GAP\n");
        }
        text.push_str(&format!("#EXTINF:1.000000,\n{s}\n"));
    }
    text.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(dir.path().join("gap.m3u8"), text).unwrap();
    let origin = Origin::serve(dir.path());
    let stats = dir.path().join("stats.jsonl");
    let y4m = play_to_y4m(
        &origin.url("gap.m3u8"),
        &["--stats-json", stats.to_str().unwrap()],
    );
    let requests = origin.requests.lock().unwrap().clone();
    assert!(
        !requests.iter().any(|r| r.contains(&segs[1])),
        "{requests:?}"
    );
    let markers = y4m.markers();
    assert!(
        markers.contains(&29) && markers.contains(&60),
        "{markers:?}"
    );
    assert!(!markers.iter().any(|m| (30..60).contains(m)), "{markers:?}");
    assert_eq!(last_stats(&stats)["stalls"], 0);
}

#[test]
fn byterange_without_offset_continues_after_the_previous_range() {
    let dir = tempfile::tempdir().unwrap();
    let segs = vod_segments(dir.path(), 3);
    // One file holding all three segments, addressed by byte ranges as RFC 8216 allows:
    // the first with an offset, the others continuing where the previous one ended.
    let mut all = Vec::new();
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-TARGETDURATION:1\n");
    for (i, s) in segs.iter().enumerate() {
        let bytes = std::fs::read(dir.path().join(s)).unwrap();
        let range = if i == 0 {
            format!("{}@0", bytes.len())
        } else {
            bytes.len().to_string()
        };
        text.push_str(&format!(
            "#EXTINF:1.000000,\n#EXT-X-BYTERANGE:{range}\nall.ts\n"
        ));
        all.extend(bytes);
    }
    text.push_str("#EXT-X-ENDLIST\n");
    std::fs::write(dir.path().join("all.ts"), all).unwrap();
    std::fs::write(dir.path().join("ranges.m3u8"), text).unwrap();
    let origin = Origin::serve(dir.path());
    let markers = play_to_y4m(&origin.url("ranges.m3u8"), &[]).markers();
    assert_eq!(markers, (0..90).collect::<Vec<_>>());
}

#[test]
fn ext_x_error_text_is_shown() {
    let text = "#EXTM3U\n#EXT-X-ERROR:Stream is offline (code 42)\n#EXT-X-TARGETDURATION:2\n";
    let (_dir, origin) = serve(&[("err.m3u8", text.as_bytes())]);
    let out = give_up_soon(&origin.url("err.m3u8"));
    assert_one_clear_error(&out, 5, "Stream is offline (code 42)");
}

// 13. Unsafe in one room.

#[test]
fn unsafe_code_lives_in_the_ffi_modules_alone_with_a_safety_comment_each() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.clone()];
    let mut sources = Vec::new();
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            sources.push(p);
        }
    }
    for path in sources {
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !code.contains("unsafe {") && !code.contains("unsafe{") {
                continue;
            }
            // FFmpeg's hwdevice API, its output contexts with an interrupt callback, Xlib
            // before the window, and the NDI runtime's (the `ndi` feature).
            assert!(
                path.ends_with("decode/hwaccel.rs")
                    || path.ends_with("output/interrupt.rs")
                    || path.ends_with("app/x11.rs")
                    || path.ends_with("output/ndi.rs"),
                "unsafe outside decode/hwaccel.rs, output/interrupt.rs, app/x11.rs and output/ndi.rs: {}:{}",
                path.display(),
                i + 1
            );
            let before = &lines[i.saturating_sub(4)..i];
            assert!(
                before
                    .iter()
                    .any(|l| l.trim_start().starts_with("// SAFETY:"))
                    || line.contains("// SAFETY:"),
                "no SAFETY comment before {}:{}",
                path.display(),
                i + 1
            );
        }
    }
}
