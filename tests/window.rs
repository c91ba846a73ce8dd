//! A real window on a real X server (Xvfb): what the screen shows is the video.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ffmpeg_next as ff;
use support::*;

const W: u32 = 640;
const H: u32 = 360;

struct Xvfb {
    display: String,
    child: Child,
}

impl Xvfb {
    /// An Xvfb that has accepted a client: a few tries, each bounded.
    fn start() -> Xvfb {
        let mut why = Vec::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(x) => return x,
                Err(e) => why.push(e),
            }
        }
        panic!("Xvfb did not start: {}", why.join("; "))
    }

    fn try_start() -> Result<Xvfb, String> {
        // Xvfb picks a free display itself and writes its number to stdout (-displayfd):
        // probing lock files here would trip over stale ones from runs that were killed.
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                &format!("{W}x{H}x24"),
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed");
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let Ok(n) = line.trim().parse::<u32>() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no display number ({line:?})"));
        };
        let x = Xvfb {
            display: format!(":{n}"),
            child,
        };
        // Lucid must find a display that takes clients: a lost start here would read as
        // "the window never showed" (it did happen once in CI, 1 run in ~10).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let probe = Command::new("xdotool")
                .arg("getdisplaygeometry")
                .env("DISPLAY", &x.display)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if probe.is_ok_and(|s| s.success()) {
                return Ok(x);
            }
            if Instant::now() > deadline {
                return Err(format!("{} took no client in 5 s", x.display));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Lucid, with its window on this display.
    fn lucid(&self) -> Command {
        let mut cmd = lucid();
        cmd.env("DISPLAY", &self.display)
            .env_remove("WAYLAND_DISPLAY");
        cmd
    }

    /// The whole screen as packed RGB, via `xwd` (what a person would see).
    fn screenshot(&self) -> Vec<u8> {
        let out = Command::new("xwd")
            .args(["-root", "-silent", "-display", &self.display])
            .output()
            .expect("xwd is installed");
        assert!(out.status.success());
        parse_xwd(&out.stdout)
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its lock file and socket; SIGKILL would leave them.
        // No panics here: this may run while a failed test unwinds.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// XWD (X Window Dump): a header of big-endian 32-bit fields, colormap, then ZPixmap rows.
fn parse_xwd(data: &[u8]) -> Vec<u8> {
    let field = |i: usize| u32::from_be_bytes(data[i * 4..i * 4 + 4].try_into().unwrap());
    let (header, width, height) = (field(0) as usize, field(4), field(5));
    assert_eq!((width, height), (W, H), "screen size");
    let (lsb_first, bpp, bpl) = (field(7) == 0, field(11) as usize, field(12) as usize);
    let (rmask, gmask, bmask) = (field(14), field(15), field(16));
    let ncolors = field(19) as usize;
    assert_eq!(bpp, 32, "24-bit visual stored in 32-bit pixels");
    let pixels = &data[header + ncolors * 12..];
    let mut rgb = Vec::with_capacity((W * H * 3) as usize);
    for y in 0..H as usize {
        for x in 0..W as usize {
            let p: [u8; 4] = pixels[y * bpl + x * 4..y * bpl + x * 4 + 4]
                .try_into()
                .unwrap();
            let v = if lsb_first {
                u32::from_le_bytes(p)
            } else {
                u32::from_be_bytes(p)
            };
            for mask in [rmask, gmask, bmask] {
                rgb.push(((v & mask) >> mask.trailing_zeros()) as u8);
            }
        }
    }
    rgb
}

fn luma_of(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks(3)
        .map(|p| (0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64) as u8)
        .collect()
}

/// Frame `n` of the source file as packed RGB, converted by FFmpeg (independent of Lucid).
fn source_frame_rgb(path: &Path, n: u64) -> Vec<u8> {
    let mut index = 0;
    let mut found = None;
    decode_file(path, |f| {
        if index == n {
            found = Some(packed_rgb(f));
        }
        index += 1;
    });
    found.unwrap_or_else(|| panic!("frame {n} not in the source"))
}

/// A decoded frame as packed RGB, converted by FFmpeg.
fn packed_rgb(f: &ff::frame::Video) -> Vec<u8> {
    let mut scaler = ff::software::scaling::Context::get(
        f.format(),
        f.width(),
        f.height(),
        ff::format::Pixel::RGB24,
        f.width(),
        f.height(),
        ff::software::scaling::Flags::BILINEAR,
    )
    .unwrap();
    let mut rgb = ff::frame::Video::empty();
    scaler.run(f, &mut rgb).unwrap();
    let stride = rgb.stride(0);
    let mut packed = Vec::new();
    for y in 0..f.height() as usize {
        packed.extend_from_slice(&rgb.data(0)[y * stride..y * stride + f.width() as usize * 3]);
    }
    packed
}

/// A still picture (colour bars) as H.264, so any frame can be compared with the source.
fn bars_clip(dir: &Path, seconds: u32) -> PathBuf {
    let clip = dir.join("bars.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("smptebars=size={W}x{H}:rate=30:duration={seconds}"))
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "10",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(status.success());
    clip
}

fn make_clip(dir: &Path) -> PathBuf {
    let path = dir.join("clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(marked_source_args(W, H, Some(20.0)))
        .args([
            "-map",
            "[hi]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "12",
        ])
        .arg(&path)
        .args(["-map", "[lo]", "-f", "null", "-"]) // the half-size branch is not needed here
        .status()
        .unwrap();
    assert!(status.success());
    path
}

#[test]
fn window_shows_the_video_frame() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path());
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .args(["--url"])
        .arg(&clip)
        .args(["--duration", "12", "--hide-ui"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);

    // Wait until the window shows video (the marker strip reads as a frame number > 0).
    let deadline = Instant::now() + Duration::from_secs(60);
    let (shot, n) = loop {
        std::thread::sleep(Duration::from_millis(500));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("lucid exited early ({status}):\n{}", log.join().unwrap());
        }
        let shot = x.screenshot();
        let n = read_marker(&luma_of(&shot), W as usize, W, H);
        if n > 15 {
            break (shot, n);
        }
        assert!(Instant::now() < deadline, "the window never showed video");
    };
    let expected = source_frame_rgb(&clip, n);
    let diff: u64 = shot
        .iter()
        .zip(&expected)
        .map(|(a, b)| (*a as i32 - *b as i32).unsigned_abs() as u64)
        .sum();
    let mean = diff as f64 / shot.len() as f64;
    assert!(
        mean < 6.0,
        "screen differs from source frame {n} by {mean:.2} per channel on average"
    );

    // Still playing a second later.
    std::thread::sleep(Duration::from_secs(1));
    let later = read_marker(&luma_of(&x.screenshot()), W as usize, W, H);
    assert!(later > n + 10, "video advances on screen: {n} then {later}");

    let status = child.wait().unwrap();
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
}

#[test]
fn window_shows_a_waiting_slate_until_the_stream_is_live() {
    let live = LiveOrigin::start(OriginOptions::default());
    live.origin.fault("master.m3u8", Fault::Status(404));
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .args([
            "--url",
            &live.master_url(),
            "--width",
            "640",
            "--height",
            "360",
            "--duration",
            "3",
            "--hide-ui",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    // While the stream answers 404, the window says so: light text on a dark slate.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let luma = luma_of(&x.screenshot());
        let text = luma.iter().filter(|l| **l > 180).count();
        let dark = luma.iter().filter(|l| **l < 40).count();
        if text > 300 && dark > luma.len() / 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no waiting slate ({text} bright pixels)"
        );
    }
    live.origin.faults.lock().unwrap().clear();
    // Then the video replaces it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        if read_marker(&luma_of(&x.screenshot()), W as usize, W, H) > 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the video never replaced the slate"
        );
    }
    let status = child.wait().unwrap();
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert!(err.contains("waiting for the stream (HTTP 404)"), "{err}");
}

/// Runs xdotool with a deadline: `search --sync` waits for ever for a window that is gone.
fn xdotool(display: &str, args: &[&str]) {
    let status = Command::new("timeout")
        .args(["10", "xdotool"])
        .args(args)
        .env("DISPLAY", display)
        .status()
        .expect("xdotool is installed");
    assert!(status.success(), "xdotool {args:?}: {status}");
}

/// Gives Lucid's window the keyboard: Xvfb has no window manager to do it.
fn focus_lucid(x: &Xvfb) {
    let args = [
        "search",
        "--sync",
        "--name",
        "^Lucid",
        "windowfocus",
        "--sync",
    ];
    xdotool(&x.display, &args);
}

/// Mean absolute difference per channel over the rectangle `x0..x1` x `y0..y1`.
fn region_diff(a: &[u8], b: &[u8], (x0, y0, x1, y1): (usize, usize, usize, usize)) -> f64 {
    let mut sum = 0u64;
    for y in y0..y1 {
        for x in x0..x1 {
            let i = (y * W as usize + x) * 3;
            for c in 0..3 {
                sum += (a[i + c] as i32 - b[i + c] as i32).unsigned_abs() as u64;
            }
        }
    }
    sum as f64 / ((x1 - x0) * (y1 - y0) * 3) as f64
}

const WHOLE: (usize, usize, usize, usize) = (0, 0, W as usize, H as usize);
/// Where the overlay window opens (top left).
const OVERLAY: (usize, usize, usize, usize) = (20, 20, 300, 200);

fn wait_until(
    what: &str,
    x: &Xvfb,
    child: &mut Child,
    mut ok: impl FnMut(&[u8]) -> bool,
) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        if let Ok(Some(status)) = child.try_wait() {
            panic!("lucid exited early ({status}) waiting for {what}");
        }
        let shot = x.screenshot();
        if ok(&shot) {
            return shot;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// The overlay is on screen, F1 removes and restores it, B blacks the output out, and
/// neither the recording nor a screenshot ever contains the overlay.
#[test]
fn overlay_toggles_and_never_reaches_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let clip = bars_clip(dir.path(), 40);
    let source = source_frame_rgb(&clip, 0);
    let record = dir.path().join("show.mp4");
    let shots = dir.path().join("shots");
    std::fs::create_dir(&shots).unwrap();
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .args(["--url"])
        .arg(&clip)
        .args(["--duration", "35", "--record"])
        .arg(&record)
        .arg("--screenshot-dir")
        .arg(&shots)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);

    // Video on screen (away from the overlay), overlay over it.
    let right = (420, 0, W as usize, H as usize);
    wait_until("video with the overlay", &x, &mut child, |s| {
        region_diff(s, &source, right) < 6.0 && region_diff(s, &source, OVERLAY) > 25.0
    });
    focus_lucid(&x);
    // A screenshot (S) while the overlay shows: the PNG has the output only.
    xdotool(&x.display, &["key", "s"]);
    // F1 hides it: the whole screen is the video.
    xdotool(&x.display, &["key", "F1"]);
    wait_until("the overlay to go", &x, &mut child, |s| {
        region_diff(s, &source, WHOLE) < 6.0
    });
    // B: blackout of the output (and so of the recording).
    xdotool(&x.display, &["key", "b"]);
    wait_until("blackout", &x, &mut child, |s| s.iter().all(|&v| v < 8));
    std::thread::sleep(Duration::from_millis(700));
    xdotool(&x.display, &["key", "b"]);
    wait_until("the picture back", &x, &mut child, |s| {
        region_diff(s, &source, WHOLE) < 6.0
    });
    // F1 again brings the overlay back.
    xdotool(&x.display, &["key", "F1"]);
    wait_until("the overlay again", &x, &mut child, |s| {
        region_diff(s, &source, OVERLAY) > 25.0
    });
    std::thread::sleep(Duration::from_millis(500));

    send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");

    // The recording: every frame is the bars or black, never the overlay.
    let (mut frames, mut black) = (0, 0);
    decode_file(&record, |f| {
        let packed = packed_rgb(f);
        frames += 1;
        if packed.iter().all(|&v| v < 20) {
            black += 1;
        } else {
            let d = region_diff(&packed, &source, OVERLAY);
            assert!(
                d < 6.0,
                "recorded frame {frames} differs in the overlay area ({d:.1})"
            );
        }
    });
    assert!(frames > 60, "{frames} frames recorded");
    assert!(
        black >= 5,
        "the blackout is in the recording ({black} black frames)"
    );

    // The screenshot: a PNG of the output at its size, without the overlay.
    let png = std::fs::read_dir(&shots)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "png"))
        .unwrap_or_else(|| panic!("no screenshot in {}; log:\n{err}", shots.display()));
    let out = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(&png)
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), (W * H * 3) as usize, "screenshot size");
    let d = region_diff(&out.stdout, &source, WHOLE);
    assert!(d < 6.0, "screenshot differs from the output ({d:.1})");
    assert!(err.contains("screenshot saved"), "{err}");
    assert!(err.contains("blackout on"), "{err}");
}

/// `--fullscreen` covers the screen even with a smaller output size, and a `--monitor` that
/// does not exist falls back to the primary one (with a warning) instead of failing a show.
#[test]
fn fullscreen_on_a_missing_monitor_falls_back_and_fills_the_screen() {
    let dir = tempfile::tempdir().unwrap();
    let clip = bars_clip(dir.path(), 20);
    let source = source_frame_rgb(&clip, 0);
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .args(["--url"])
        .arg(&clip)
        .args([
            "--width",
            "320",
            "--height",
            "180",
            "--hide-ui",
            "--fullscreen",
        ])
        .args(["--monitor", "3", "--duration", "15"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    // A 320x180 output, scaled up to the whole 640x360 screen.
    wait_until("the picture to fill the screen", &x, &mut child, |s| {
        region_diff(s, &source, WHOLE) < 10.0
    });
    // F11 leaves fullscreen: the window goes back to 320x180 and the rest of the screen
    // is the bare root window again.
    focus_lucid(&x);
    xdotool(&x.display, &["key", "F11"]);
    wait_until("the window to leave fullscreen", &x, &mut child, |s| {
        region_diff(s, &source, (330, 190, W as usize, H as usize)) > 30.0
    });
    send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert!(
        err.contains("--monitor 3: there are 1 monitor(s); using the primary one"),
        "{err}"
    );
}

/// A screenshot taken as Lucid quits is written completely before it exits (quitting waits
/// for it), under its final name only.
#[test]
fn a_screenshot_taken_while_quitting_is_complete_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let clip = bars_clip(dir.path(), 40);
    let source = source_frame_rgb(&clip, 0);
    let shots = dir.path().join("shots");
    std::fs::create_dir(&shots).unwrap();
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .args(["--hide-ui", "--url"])
        .arg(&clip)
        .arg("--screenshot-dir")
        .arg(&shots)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    wait_until("the video", &x, &mut child, |s| {
        region_diff(s, &source, WHOLE) < 6.0
    });
    focus_lucid(&x);
    // S and Q in one go: the screenshot is still being captured when the quit arrives.
    xdotool(&x.display, &["key", "s", "q"]);
    let status = wait_with_limit(&mut child, Duration::from_secs(20));
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
    let files: Vec<PathBuf> = std::fs::read_dir(&shots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one finished file, no partial one: {files:?}\n{err}"
    );
    assert!(!files[0].to_string_lossy().contains(".part"), "{files:?}");
    let out = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-i"])
        .arg(&files[0])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "the PNG decodes");
    assert_eq!(out.stdout.len(), (W * H * 3) as usize, "screenshot size");
    assert!(region_diff(&out.stdout, &source, WHOLE) < 6.0);
    assert!(err.contains("screenshot saved"), "{err}");
}

/// The window title names the stream without its credentials.
#[test]
fn the_window_title_never_shows_credentials() {
    let live = LiveOrigin::start(OriginOptions {
        vod_seconds: Some(20.0),
        ..OriginOptions::default()
    });
    let url = format!(
        "http://viewer:PASSWORD123@127.0.0.1:{}/master.m3u8?tkn=TOKEN456",
        live.origin.port
    );
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .args(["--url", &url])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = Command::new("timeout")
        .args([
            "10",
            "xdotool",
            "search",
            "--sync",
            "--name",
            "^Lucid",
            "getwindowname",
        ])
        .env("DISPLAY", &x.display)
        .output()
        .expect("xdotool is installed");
    send_signal(child.id(), "INT");
    wait_with_limit(&mut child, Duration::from_secs(20));
    let title = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(title.contains("master.m3u8?tkn=***"), "{title}");
    assert!(
        !title.contains("PASSWORD123") && !title.contains("TOKEN456"),
        "{title}"
    );
}

#[test]
fn webrtc_in_a_window_waits_plays_says_it_is_reconnecting_and_resumes() {
    use support::whep::WhepPeer;
    let mut peer = WhepPeer::start(&["--statuses", &["404"; 6].join(",")]);
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .args(["--url", &peer.url(), "--width", "640", "--height", "360"])
        .args(["--duration", "14", "--hide-ui"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    let marker = |x: &Xvfb| read_marker(&luma_of(&x.screenshot()), W as usize, W, H);
    // The banner: yellow text on a dark panel along the bottom, over the held picture
    // (whose greys never reach the text's brightness).
    let banner = |x: &Xvfb| {
        let luma = luma_of(&x.screenshot());
        luma[(H as usize - 60) * W as usize..]
            .iter()
            .filter(|l| **l > 200)
            .count()
            > 100
    };
    let until = |what: &str, limit: u64, ok: &dyn Fn() -> bool| -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(limit);
        while !ok() {
            if Instant::now() >= deadline {
                return Err(format!("{what} (marker {})", marker(&x)));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    };
    let mut first_peer = String::new();
    let mut restarted = None;
    let mut steps = || -> Result<(), String> {
        until("the video never replaced the slate", 30, &|| {
            marker(&x) > 20
        })?;
        if peer.count("offer") < 7 {
            return Err("the 404s were not retried".into());
        }
        if banner(&x) {
            return Err("a banner while playing".into());
        }
        first_peer = peer.events_text();
        peer.kill();
        until("no reconnecting banner", 10, &|| banner(&x))?;
        let held = marker(&x);
        std::thread::sleep(Duration::from_millis(500));
        if marker(&x) != held {
            return Err("the last frame was not held".into());
        }
        restarted = Some(peer.restart());
        // The restarted server counts from 0 again: the picture moves on and the banner goes.
        until("playback did not resume", 10, &|| {
            marker(&x) != held && !banner(&x)
        })
    };
    // On failure, everything that says why: Lucid's log and what each peer saw.
    if let Err(what) = steps() {
        let _ = child.kill();
        let _ = child.wait();
        let last = restarted.as_ref().unwrap_or(&peer).events_text();
        panic!(
            "{what}\nthe first peer's events:\n{first_peer}\nthe last peer's events:\n{last}\nlucid's stderr:\n{}",
            log.join().unwrap()
        );
    }
    let status = wait_with_limit(&mut child, Duration::from_secs(60));
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
}

/// Daydream cues from the keyboard against the fake Daydream API: a burst of cue changes
/// is debounced (the latest prompt wins, at most about ten PATCHes a second), and a cue
/// with a transition morphs the prompt with weights rising monotonically from 0 to 1
/// within the cue's time.
#[test]
fn daydream_cues_are_debounced_and_a_transition_morphs_within_its_time() {
    use support::daydream::{FakeDaydream, KEY};
    use support::whep::WhepPeer;
    // The output warms up for a few seconds (WHEP answers 404), as Daydream's does.
    let peer = WhepPeer::start(&["--statuses", &["404"; 8].join(",")]);
    let fake = FakeDaydream::start(Some(peer.url()));
    let dir = tempfile::tempdir().unwrap();
    let cues = dir.path().join("cues.ron");
    std::fs::write(
        &cues,
        r#"(cues: [
            (name: "lake", prompt: "a quiet lake"),
            (name: "forest", prompt: "a misty forest"),
            (name: "city", prompt: "a burning city", transition: 2.0),
        ])"#,
    )
    .unwrap();
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .env("DAYDREAM_API_KEY", KEY)
        .args([
            "--daydream-api",
            &fake.url(),
            "--daydream-stream",
            "str_existing",
        ])
        .arg("--cues")
        .arg(&cues)
        .args([
            "--width",
            "640",
            "--height",
            "360",
            "--duration",
            "12",
            "--hide-ui",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    // Meanwhile the slate shows Daydream's own status line, in its light blue.
    wait_until("Daydream's status on the slate", &x, &mut child, |shot| {
        shot.chunks_exact(3)
            .filter(|p| p[2] > 200 && (120..=185).contains(&p[0]) && (170..=225).contains(&p[1]))
            .count()
            > 200
    });
    focus_lucid(&x);
    // The burst: lake, forest, lake, forest, ... twenty presses in about half a second,
    // ending on forest.
    let mut burst = vec!["key", "--delay", "25", "bracketright"];
    for _ in 0..10 {
        burst.extend(["bracketright", "bracketleft"]);
    }
    burst.push("bracketright");
    let burst_start = Instant::now();
    xdotool(&x.display, &burst);
    let burst_end = Instant::now();
    std::thread::sleep(Duration::from_millis(800));
    let patches = |fake: &FakeDaydream| fake.with_method("PATCH");
    let after_burst = patches(&fake);
    let burst_secs = (burst_end - burst_start).as_secs_f64() + 0.8;
    assert!(
        after_burst.len() as f64 <= burst_secs * 10.0 + 2.0,
        "{} PATCHes in {burst_secs:.1} s: not debounced",
        after_burst.len()
    );
    assert!(after_burst.len() < 22, "one PATCH per key press");
    let last = after_burst.last().expect("a PATCH").json();
    assert_eq!(
        last["params"]["prompt"], "a misty forest",
        "the latest cue wins"
    );
    assert!(
        after_burst
            .iter()
            .all(|p| p.json()["params"]["model_id"] == "stabilityai/sdxl-turbo"),
        "model_id on every PATCH"
    );

    // The transition: forest -> city over 2 s.
    let morph_start = Instant::now();
    xdotool(&x.display, &["key", "bracketright"]);
    std::thread::sleep(Duration::from_millis(3000));
    let morph: Vec<(Duration, f64)> = patches(&fake)
        .into_iter()
        .skip(after_burst.len())
        .filter_map(|p| {
            let prompt = p.json()["params"]["prompt"].clone();
            let pair = prompt.as_array()?.clone();
            assert_eq!(pair[0][0], "a misty forest");
            assert_eq!(pair[1][0], "a burning city");
            Some((
                p.at.saturating_duration_since(morph_start),
                pair[1][1].as_f64()?,
            ))
        })
        .collect();
    assert!(morph.len() >= 5, "{morph:?}");
    assert!(
        morph.windows(2).all(|w| w[1].1 > w[0].1),
        "weights rise: {morph:?}"
    );
    assert!(morph[0].1 < 0.2, "{morph:?}");
    let (at, last) = *morph.last().unwrap();
    assert_eq!(last, 1.0, "{morph:?}");
    assert!(at <= Duration::from_millis(2600), "reached 1 at {at:?}");
    let rate = morph.len() as f64 / at.as_secs_f64().max(0.1);
    assert!(rate <= 12.0, "{rate:.1} PATCHes a second");
    eprintln!(
        "burst: {} key presses, {} PATCHes; morph: {} steps, weight 1 at {at:?}",
        22,
        after_burst.len(),
        morph.len()
    );
    send_signal(child.id(), "INT");
    let status = wait_with_limit(&mut child, Duration::from_secs(20));
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert!(err.contains("cue 3: city"), "{err}");
}

/// Layers in a window: bus A's layer shows, X crossfades to bus B's over the crossfade
/// time and back again; the picture on screen follows.
#[test]
fn x_crossfades_between_the_buses_in_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let clip = bars_clip(dir.path(), 40);
    let red = lavfi_file(
        &dir.path().join("red.png"),
        "color=c=0xff0000:s=64x36,format=rgba",
        &["-frames:v", "1"],
    );
    let blue = lavfi_file(
        &dir.path().join("blue.png"),
        "color=c=0x0000ff:s=64x36,format=rgba",
        &["-frames:v", "1"],
    );
    let x = Xvfb::start();
    let mut child = x
        .lucid()
        .args(["--hide-ui", "--duration", "35", "--url"])
        .arg(&clip)
        .arg("--layer")
        .arg(format!("{}:bus=a,fit=stretch", red.display()))
        .arg("--layer")
        .arg(format!("{}:bus=b,fit=stretch", blue.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    let centre = |s: &[u8]| {
        let i = ((H as usize / 2) * W as usize + W as usize / 2) * 3;
        [s[i], s[i + 1], s[i + 2]]
    };
    let is =
        |want: [u8; 3]| move |s: &[u8]| centre(s).iter().zip(want).all(|(a, b)| a.abs_diff(b) < 12);
    wait_until("bus A's red layer", &x, &mut child, is([255, 0, 0]));
    focus_lucid(&x);
    let pressed = Instant::now();
    xdotool(&x.display, &["key", "x"]);
    // Half way (about a second in) both show; after the default 2 s only B.
    wait_until("bus B's blue layer", &x, &mut child, is([0, 0, 255]));
    let took = pressed.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "the crossfade takes its time ({took:?})"
    );
    xdotool(&x.display, &["key", "x"]);
    wait_until("back to red", &x, &mut child, is([255, 0, 0]));
    send_signal(child.id(), "INT");
    let status = child.wait().unwrap();
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
    assert!(err.contains("crossfading to B"), "{err}");
}

/// Asks Lucid's window to close as a window manager's close button does (WM_DELETE_WINDOW,
/// through `tests/peers/wm_close.py`: Xvfb has no window manager and xdotool cannot).
fn ask_to_close(x: &Xvfb) {
    let found = Command::new("timeout")
        .args(["10", "xdotool", "search", "--sync", "--name", "^Lucid"])
        .env("DISPLAY", &x.display)
        .output()
        .expect("xdotool is installed");
    let id = String::from_utf8_lossy(&found.stdout)
        .lines()
        .next()
        .expect("Lucid's window")
        .trim()
        .to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/wm_close.py");
    let status = Command::new("timeout")
        .args(["10", "python3"])
        .arg(script)
        .arg(&id)
        .env("DISPLAY", &x.display)
        .status()
        .unwrap();
    assert!(status.success(), "wm_close.py {id}");
}

/// `--kiosk`: fullscreen with nothing over the picture, and nothing a visitor does reaches
/// the show (keys that quit, black out, fade, leave fullscreen, open the overlay or move
/// the crossfader; the window's close request). SIGTERM still ends it cleanly, recording
/// finalized. The same close request ends a show that is not a kiosk (so it does reach
/// Lucid's window).
#[test]
fn a_kiosk_ignores_every_key_and_close_request_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let clip = bars_clip(dir.path(), 60);
    let source = source_frame_rgb(&clip, 0);
    let x = Xvfb::start();
    // Not a kiosk: the close request ends the show.
    let mut child = x
        .lucid()
        .args(["--url"])
        .arg(&clip)
        .args(["--hide-ui", "--duration", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    wait_until("the picture", &x, &mut child, |s| {
        region_diff(s, &source, (0, 0, 320, 180)) < 10.0
    });
    ask_to_close(&x);
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
    // A kiosk: a 320x180 output fills the 640x360 screen.
    let record = dir.path().join("kiosk.mkv");
    let mut child = x
        .lucid()
        .args(["--url"])
        .arg(&clip)
        .args(["--kiosk", "--width", "320", "--height", "180"])
        .arg("--record")
        .arg(&record)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = collect_stderr(&mut child);
    wait_until("the picture to fill the screen", &x, &mut child, |s| {
        region_diff(s, &source, WHOLE) < 10.0
    });
    focus_lucid(&x);
    for key in [
        "Escape", "q", "F1", "b", "f", "F11", "x", "space", "ctrl+q", "alt+F4",
    ] {
        xdotool(&x.display, &["key", key]);
    }
    xdotool(&x.display, &["mousemove", "320", "180", "click", "1"]);
    ask_to_close(&x);
    // Long enough for a fade to show and for a quit to have happened.
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.try_wait().unwrap().is_none(), "the kiosk quit");
    let shot = x.screenshot();
    let d = region_diff(&shot, &source, WHOLE);
    assert!(
        d < 10.0,
        "the picture changed under the keys (blackout, fade, overlay or windowed): {d:.1}"
    );
    send_signal(child.id(), "TERM");
    let status = wait_with_limit(&mut child, Duration::from_secs(10));
    let err = log.join().unwrap();
    assert!(status.success(), "{status}; stderr:\n{err}");
    for quiet in ["blackout", "fading", "freeze", "crossfading", "tempo"] {
        assert!(
            !err.contains(quiet),
            "a key reached the show ({quiet}): {err}"
        );
    }
    let (w, h, markers) = file_markers(&record);
    assert_eq!((w, h), (320, 180));
    assert!(markers.len() > 60, "the recording was finalized: {err}");
}
