//! Outputs (issue 11): network outputs received by the real ffmpeg CLI listening on
//! 127.0.0.1 (RTMP, SRT, UDP), a receiver killed mid-stream and started again, encoder
//! choice, and clear errors for outputs that cannot be opened.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const LIMIT: Duration = Duration::from_secs(120);

/// A free port on 127.0.0.1 (TCP or UDP), as the kernel hands them out.
fn free_port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }
}

/// The ffmpeg CLI receiving `url` (listening) and copying what comes into `out`.
struct Receiver(Child);

impl Receiver {
    fn start(input: &[&str], out: &Path) -> Receiver {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin"])
            // Written as it comes: a receiver killed mid-stream has kept what it got.
            .args(["-analyzeduration", "500000", "-probesize", "200000"])
            .args(input)
            .args(["-c", "copy", "-flush_packets", "1", "-f", "mpegts", "-y"])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg runs");
        Receiver(child)
    }

    /// Waits for the receiver to end by itself (its input closed), up to a deadline.
    fn wait(mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.0.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                // The sender is gone: an interrupted ffmpeg still finalizes its file.
                send_signal(self.0.id(), "INT");
                wait_with_limit(&mut self.0, Duration::from_secs(10));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Markers of every frame a receiver wrote (a file cut short decodes up to its end).
fn received(path: &Path) -> Vec<u64> {
    assert!(path.is_file(), "{} was not written", path.display());
    file_markers(path).2
}

fn lucid_into(input: &Path, outputs: &[String], stats: &Path, extra: &[&str]) -> Child {
    let mut cmd = lucid();
    cmd.arg("--no-preview").arg("--url").arg(input);
    for o in outputs {
        cmd.arg("--output").arg(o);
    }
    cmd.arg("--stats-json")
        .arg(stats)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lucid runs")
}

#[test]
fn rtmp_srt_and_udp_receivers_get_every_frame_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = marked_clip(dir.path(), 320, 180, 4.0, "mp4", &X264_FAST);
    let (rtmp, srt, udp) = (free_port(false), free_port(true), free_port(true));
    let outs: Vec<PathBuf> = ["rtmp.ts", "srt.ts", "udp.ts"]
        .iter()
        .map(|n| dir.path().join(n))
        .collect();
    let receivers = [
        Receiver::start(
            &[
                "-listen",
                "1",
                "-i",
                &format!("rtmp://127.0.0.1:{rtmp}/live/key"),
            ],
            &outs[0],
        ),
        Receiver::start(
            &["-i", &format!("srt://127.0.0.1:{srt}?mode=listener")],
            &outs[1],
        ),
        Receiver::start(
            &[
                "-f",
                "mpegts",
                "-i",
                &format!("udp://127.0.0.1:{udp}?timeout=3000000"),
            ],
            &outs[2],
        ),
    ];
    // The listeners bind in a moment; a sender that comes first is refused and retries.
    std::thread::sleep(Duration::from_millis(500));
    let stats = dir.path().join("stats.jsonl");
    let outputs = [
        format!("rtmp://127.0.0.1:{rtmp}/live/s3cret-stream-key"),
        format!("srt://127.0.0.1:{srt}"),
        format!("udp://127.0.0.1:{udp}"),
    ];
    let mut child = lucid_into(&input, &outputs, &stats, &["--encoder", "x264"]);
    let err = collect_stderr(&mut child);
    let status = wait_with_limit(&mut child, LIMIT);
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    assert!(
        !err.contains("s3cret"),
        "the stream key was printed:\n{err}"
    );
    for r in receivers {
        r.wait(Duration::from_secs(10));
    }
    let s = last_stats(&stats);
    assert_eq!(s["offline"], false, "a network output plays in real time");
    for (name, out) in ["rtmp", "srt", "udp"].iter().zip(&outs) {
        let markers = received(out);
        assert_eq!(assert_in_order(&markers), 0, "{name}: a gap in {markers:?}");
        assert_eq!(
            markers.first(),
            Some(&0),
            "{name} starts at the first frame"
        );
        // The last frames may still be in the encoder when the stats line is written,
        // never missing from the receiver.
        assert_eq!(markers.len(), 120, "{name}: {markers:?}");
        let o = &s["outputs"][name];
        assert_eq!(o["encoder"], "libx264", "{name}: {o}");
        assert_eq!(o["dropped"], 0, "{name}: {o}");
        assert_eq!(o["reconnects"], 0, "{name}: {o}");
    }
}

#[test]
fn an_rtmp_receiver_gets_the_sound_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let input = sound::clip_with_clicks(dir.path(), 6.0, "mkv", None);
    let port = free_port(false);
    let out = dir.path().join("rtmp.ts");
    let receiver = Receiver::start(
        &[
            "-listen",
            "1",
            "-i",
            &format!("rtmp://127.0.0.1:{port}/live/key"),
        ],
        &out,
    );
    std::thread::sleep(Duration::from_millis(500));
    let stats = dir.path().join("stats.jsonl");
    let outputs = [format!("rtmp://127.0.0.1:{port}/live/key")];
    let mut child = lucid_into(&input, &outputs, &stats, &["--encoder", "x264"]);
    let err = collect_stderr(&mut child);
    let status = wait_with_limit(&mut child, LIMIT);
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    receiver.wait(Duration::from_secs(10));
    // The click on frame 0 is in AAC's priming frame, which FLV loses (21 ms).
    let found = sound::offsets(&out);
    sound::assert_in_sync(&found, &[45, 90, 135], 0.040, "RTMP");
    let s = last_stats(&stats);
    assert_eq!(s["audio"]["codec"], "aac", "{s}");
    assert_eq!(s["audio"]["sample_rate"], 44100, "{s}");
}

#[test]
fn a_receiver_that_goes_away_is_reconnected_and_the_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = marked_clip(dir.path(), 320, 180, 10.0, "mp4", &X264_FAST);
    let port = free_port(false);
    let listen = format!("rtmp://127.0.0.1:{port}/live/key");
    let (first, second) = (dir.path().join("first.ts"), dir.path().join("second.ts"));
    let receiver = Receiver::start(&["-listen", "1", "-i", &listen], &first);
    std::thread::sleep(Duration::from_millis(500));
    let stats = dir.path().join("stats.jsonl");
    let record = dir.path().join("show.mkv");
    let mut child = lucid_into(
        &input,
        std::slice::from_ref(&listen),
        &stats,
        &["--record", record.to_str().unwrap()],
    );
    let err = collect_stderr(&mut child);
    // Three seconds in, the receiver dies without a goodbye; one second later a new one
    // listens on the same port.
    std::thread::sleep(Duration::from_secs(3));
    receiver.kill();
    std::thread::sleep(Duration::from_secs(1));
    let again = Receiver::start(&["-listen", "1", "-i", &listen], &second);
    let status = wait_with_limit(&mut child, LIMIT);
    let err = err.join().unwrap();
    assert!(status.success(), "{err}");
    again.wait(Duration::from_secs(10));

    let (before, after) = (received(&first), received(&second));
    assert_in_order(&before);
    assert_in_order(&after);
    assert!(
        !before.is_empty() && !after.is_empty(),
        "{before:?} {after:?}"
    );
    assert!(
        after[0] > *before.last().unwrap(),
        "the new receiver gets later frames: {before:?} then {after:?}"
    );
    assert_eq!(*after.last().unwrap(), 299, "the stream went on to the end");
    // The recording lost nothing.
    let (_, _, recorded) = file_markers(&record);
    assert_eq!(recorded, (0..300).collect::<Vec<u64>>());
    let s = last_stats(&stats);
    let rtmp = &s["outputs"]["rtmp"];
    assert_eq!(rtmp["reconnects"], 1, "{rtmp}");
    assert!(rtmp["dropped"].as_u64().unwrap() > 0, "{rtmp}");
    assert_eq!(s["outputs"]["record"]["dropped"], 0, "{s}");
    assert!(err.contains("trying again"), "{err}");
}

#[test]
fn an_encoder_that_is_not_there_and_bad_outputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let input = marked_clip(dir.path(), 64, 48, 1.0, "mp4", &X264_FAST);
    let run = |extra: &[&str]| {
        run_with_limit(
            lucid()
                .arg("--no-preview")
                .arg("--url")
                .arg(&input)
                .args(extra),
            LIMIT,
        )
    };
    for (args, needle) in [
        (
            vec!["--output", "udp://127.0.0.1"],
            "needs a port (host:port)",
        ),
        (
            vec!["--output", "http://example.com/x"],
            "network outputs are",
        ),
        (vec!["--output", "show.mp4"], "%d"),
        (vec!["--output", "ndi://"], "needs a source name"),
        (
            vec!["--record", "x.mp4", "--bitrate", "fast"],
            "--bitrate fast",
        ),
        (vec!["--record", "x.mp4", "--gop", "0"], "--gop must be"),
    ] {
        assert_one_clear_error(&run(&args), 2, needle);
    }
    // NDI is a cargo feature (its own test, `cargo test --features ndi --lib ndi`, checks
    // the error without the runtime); a build without it says how to get it.
    if !cfg!(feature = "ndi") {
        let out = run(&["--output", "ndi://Lucid"]);
        assert_one_clear_error(&out, 2, "cargo build --features ndi");
    }
    // No v4l2loopback device: said before anything starts, with how to make one, and no
    // plain file is created in its place.
    let camera = "/dev/video63";
    if !Path::new(camera).exists() {
        assert_one_clear_error(&run(&["--output", camera]), 7, "modprobe v4l2loopback");
        assert!(!Path::new(camera).exists());
    }
    if !Path::new("/dev/nvidiactl").exists() {
        // Found once the stream's size is known, after the renderer started (whose
        // drivers may print lines of their own).
        let record = dir.path().join("x.mp4");
        let out = run(&["--record", record.to_str().unwrap(), "--encoder", "nvenc"]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(7), "{err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("error: cannot write"))
            .unwrap_or_else(|| panic!("no output error in:\n{err}"));
        assert!(line.contains("h264_nvenc"), "{line}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!record.exists(), "no empty recording is left behind");
    }
    if !Path::new("/dev/dri").exists() {
        let record = dir.path().join("v.mp4");
        let out = run(&["--record", record.to_str().unwrap(), "--encoder", "vaapi"]);
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(7), "{err}");
        assert!(err.contains("h264_vaapi: no VAAPI device"), "{err}");
    }
}

/// `lucid` with `args`, run with a file-size limit of `kib` KiB (`ulimit -f`) and SIGXFSZ
/// ignored: a write past the limit fails with "File too large", as on a full disk.
fn lucid_with_file_limit(kib: u32, args: &[&str]) -> Command {
    let template = lucid();
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"",
            kib * 2
        ))
        .arg(template.get_program())
        .args(args);
    for (key, value) in template.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    // Once the renderer runs, Mesa's Wayland code says on stderr, as "error: ...", that
    // XDG_RUNTIME_DIR is not set; a folder of its own keeps the one error line Lucid's.
    let runtime = std::env::temp_dir().join(format!("lucid-test-runtime-{}", std::process::id()));
    let _ = std::fs::create_dir(&runtime);
    let _ = std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    );
    cmd.env("XDG_RUNTIME_DIR", runtime);
    cmd
}

/// A recording that fails while the show runs (here the file-size limit, as a full disk)
/// is reported as it happens: the log says so at once and `--stats-json` says
/// `outputs.record.state: failed` with the error, while the other outputs play on; the
/// run then ends with exit 7. With no output left and no window, the show stops.
#[test]
fn a_recording_that_fails_mid_show_is_reported_at_once_and_the_show_plays_on() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("show.mp4");
    let stats = dir.path().join("stats.jsonl");
    let (record_s, stats_s) = (record.to_str().unwrap(), stats.to_str().unwrap());
    let out = run_with_limit(
        &mut lucid_with_file_limit(
            8,
            &[
                "--no-preview",
                "--width",
                "320",
                "--height",
                "180",
                "--pipe",
                "y4m",
                "--record",
                record_s,
                "--duration",
                "7",
                "--stats-json",
                stats_s,
            ],
        ),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(7), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert!(
        errors.len() == 1 && errors[0].contains("File too large"),
        "{errors:?}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&stats)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let failed_at = lines
        .iter()
        .position(|s| s["outputs"]["record"]["state"] == "failed")
        .unwrap_or_else(|| panic!("the failure never reached the stats: {lines:?}"));
    let failed = &lines[failed_at];
    assert!(
        failed["outputs"]["record"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("File too large")),
        "{failed}"
    );
    let pipe_then = failed["outputs"]["pipe"]["written"].as_u64().unwrap();
    let pipe_end = lines.last().unwrap()["outputs"]["pipe"]["written"]
        .as_u64()
        .unwrap();
    assert!(
        failed_at + 1 < lines.len() && pipe_end >= pipe_then + 30,
        "the show went on after the failure: pipe {pipe_then} then {pipe_end}"
    );
    let said = err
        .lines()
        .position(|l| l.contains("record failed"))
        .expect("said at once");
    let ended = err
        .lines()
        .position(|l| l.contains("--duration reached"))
        .unwrap();
    assert!(said < ended, "{err}");
    assert!(
        Y4m::parse(&out.stdout).frames.len() >= 200,
        "every frame reached the pipe"
    );

    // The recording alone, headless: nobody would see the show, so it stops.
    let started = Instant::now();
    let out = run_with_limit(
        &mut lucid_with_file_limit(
            8,
            &[
                "--no-preview",
                "--width",
                "320",
                "--height",
                "180",
                "--record",
                record_s,
                "--overwrite",
                "--duration",
                "60",
            ],
        ),
        LIMIT,
    );
    assert_one_clear_error(&out, 7, "File too large");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
