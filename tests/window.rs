//! A real window on a real X server (Xvfb): what the screen shows is the video.

mod support;

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
    fn start() -> Xvfb {
        let n = (90..200)
            .find(|n| {
                !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
            })
            .expect("a free display number");
        let display = format!(":{n}");
        let child = Command::new("Xvfb")
            .args([
                &display,
                "-screen",
                "0",
                &format!("{W}x{H}x24"),
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            assert!(Instant::now() < deadline, "Xvfb did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Xvfb { display, child }
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
                packed.extend_from_slice(
                    &rgb.data(0)[y * stride..y * stride + f.width() as usize * 3],
                );
            }
            found = Some(packed);
        }
        index += 1;
    });
    found.unwrap_or_else(|| panic!("frame {n} not in the source"))
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
    let mut child = lucid()
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        .args(["--url"])
        .arg(&clip)
        .args(["--duration", "12"])
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
    let mut child = lucid()
        .env("DISPLAY", &x.display)
        .env_remove("WAYLAND_DISPLAY")
        .args([
            "--url",
            &live.master_url(),
            "--width",
            "640",
            "--height",
            "360",
            "--duration",
            "3",
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
