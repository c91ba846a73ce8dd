//! Test fixtures: a live HLS origin made by the real `ffmpeg` CLI and served over real HTTP
//! on 127.0.0.1, frame markers, and readers for what Lucid writes.
#![allow(
    dead_code,
    reason = "each test crate uses a different part of the harness"
)]

pub mod daydream;
pub mod scripted;
pub mod sound;
pub mod whep;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ffmpeg_next as ff;

/// Frames per second of every fixture.
pub const FPS: u32 = 30;
/// Marker strip: 16 blocks across the top, 1/15 of the frame height tall.
pub const MARKER_BITS: u32 = 16;

/// An answer the server gives instead of a file.
#[derive(Clone)]
pub enum Fault {
    /// Always this status with an empty body.
    Status(u16),
    /// 200 with this content type and body.
    Body(&'static str, Vec<u8>),
    /// 307 to this location.
    Redirect(String),
}

/// A tiny HTTP origin on 127.0.0.1 serving a directory, with per-path faults.
pub struct Origin {
    pub port: u16,
    pub faults: Arc<Mutex<HashMap<String, Fault>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Origin {
    pub fn serve(dir: &Path) -> Origin {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = server.server_addr().to_ip().expect("ip address").port();
        let faults: Arc<Mutex<HashMap<String, Fault>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (f, r, s, dir) = (
            faults.clone(),
            requests.clone(),
            stop.clone(),
            dir.to_path_buf(),
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let url = req.url().to_string();
                r.lock().unwrap().push(url.clone());
                let path = url.split('?').next().unwrap_or("").to_string();
                let fault = f.lock().unwrap().get(&path).cloned();
                let resp = match fault {
                    Some(Fault::Status(code)) => {
                        tiny_http::Response::from_data(Vec::new()).with_status_code(code)
                    }
                    Some(Fault::Body(ct, body)) => tiny_http::Response::from_data(body)
                        .with_header(tiny_http::Header::from_bytes("Content-Type", ct).unwrap()),
                    Some(Fault::Redirect(to)) => tiny_http::Response::from_data(Vec::new())
                        .with_status_code(307)
                        .with_header(
                            tiny_http::Header::from_bytes("Location", to.as_bytes()).unwrap(),
                        ),
                    None => {
                        let file = dir.join(path.trim_start_matches('/'));
                        // `Range: bytes=a-b` (EXT-X-BYTERANGE) gets those bytes.
                        let range = req
                            .headers()
                            .iter()
                            .find(|h| h.field.equiv("Range"))
                            .and_then(|h| {
                                let v = h.value.as_str().strip_prefix("bytes=")?.to_string();
                                let (a, b) = v.split_once('-')?;
                                Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
                            });
                        match std::fs::read(&file) {
                            Ok(body) if !path.contains("..") && range.is_some() => {
                                let (a, b) = range.unwrap();
                                let part =
                                    body[a.min(body.len())..(b + 1).min(body.len())].to_vec();
                                tiny_http::Response::from_data(part).with_status_code(206)
                            }
                            Ok(body) if !path.contains("..") => {
                                let ct = if path.ends_with(".m3u8") {
                                    "application/vnd.apple.mpegurl"
                                } else if path.ends_with(".ts") {
                                    "video/mp2t"
                                } else {
                                    "video/mp4"
                                };
                                tiny_http::Response::from_data(body).with_header(
                                    tiny_http::Header::from_bytes("Content-Type", ct).unwrap(),
                                )
                            }
                            _ => tiny_http::Response::from_data(b"not found".to_vec())
                                .with_status_code(404),
                        }
                    }
                };
                let _ = req.respond(resp);
            }
        });
        Origin {
            port,
            faults,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.port,
            path.trim_start_matches('/')
        )
    }

    pub fn fault(&self, path: &str, fault: Fault) {
        self.faults
            .lock()
            .unwrap()
            .insert(format!("/{}", path.trim_start_matches('/')), fault);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The lavfi graph of a marked source: testsrc2 with the frame number in 16 black/white
/// blocks across the top (bit i in block i, least significant on the left).
pub fn marked_source_args(width: u32, height: u32, seconds: Option<f64>) -> Vec<String> {
    marked_source_args_from(0, width, height, seconds)
}

/// [`marked_source_args`] whose first frame carries the number `first`.
pub fn marked_source_args_from(
    first: u64,
    width: u32,
    height: u32,
    seconds: Option<f64>,
) -> Vec<String> {
    let strip = (height / 15).max(4);
    let duration = seconds
        .map(|s| format!(":duration={s}"))
        .unwrap_or_default();
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("testsrc2=size={width}x{height}:rate={FPS}{duration}"),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("nullsrc=size={MARKER_BITS}x1:rate={FPS}"),
        "-filter_complex".into(),
        format!(
            "[1]format=gray,geq=lum='255*mod(floor((N+{first})/pow(2\\,X))\\,2)',scale={width}:{strip}:flags=neighbor[m];\
             [0][m]overlay=0:0:shortest=1,format=yuv420p,split=2[a][b];[a]copy[hi];[b]scale={}:{}[lo]",
            width / 2,
            height / 2
        ),
    ]
}

/// The marked source of `seconds`, written by the ffmpeg CLI with `encode` as `clip-WxH.ext`.
pub fn marked_clip(
    dir: &Path,
    width: u32,
    height: u32,
    seconds: f64,
    ext: &str,
    encode: &[&str],
) -> PathBuf {
    let path = dir.join(format!("clip-{width}x{height}.{ext}"));
    marked_clip_at(&path, FPS, width, height, seconds, encode)
}

/// libx264 as the tests' clips use it: fast, near-lossless, a keyframe a second.
pub const X264_FAST: [&str; 8] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-crf",
    "12",
    "-g",
    "30",
];

/// A marked clip at `fps` frames a second (each frame's number in its marker), as `path`.
pub fn marked_clip_at(
    path: &Path,
    fps: u32,
    width: u32,
    height: u32,
    seconds: f64,
    encode: &[&str],
) -> PathBuf {
    let args: Vec<String> = marked_source_args(width, height, Some(seconds))
        .into_iter()
        .map(|a| a.replace(&format!("rate={FPS}"), &format!("rate={fps}")))
        .collect();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(args)
        .args(["-map", "[hi]"])
        .args(encode)
        .arg(path)
        .args(["-map", "[lo]", "-f", "null", "-"])
        .status()
        .unwrap();
    assert!(status.success());
    path.to_path_buf()
}

/// Writes `path` from an FFmpeg lavfi source (`color=c=...:s=WxH...`) with `encode`.
pub fn lavfi_file(path: &Path, source: &str, encode: &[&str]) -> PathBuf {
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(source)
        .args(encode)
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make {}", path.display());
    path.to_path_buf()
}

/// Spawns `cmd` with stdout and stderr piped and read on threads of their own (so the
/// child never blocks on a full pipe); join the handles for what it wrote.
pub fn spawn_piped(cmd: &mut Command) -> (Child, JoinHandle<Vec<u8>>, JoinHandle<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = collect_stderr(&mut child);
    (child, out, err)
}

/// H.264 as live origins encode it: fast, no B-frames (WebRTC-compatible, like Daydream's
/// output), and a keyframe every `gop` frames exactly, so segments cut on keyframes.
pub fn live_x264_args(gop: u32) -> Vec<String> {
    let g = gop.to_string();
    [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        &g,
        "-keyint_min",
        &g,
        "-sc_threshold",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

/// Options for [`LiveOrigin`].
#[derive(Clone)]
pub struct OriginOptions {
    /// The high rendition's size; the low one is half of it.
    pub width: u32,
    pub height: u32,
    pub segment_secs: u32,
    /// `Some`: a finished VOD of that many seconds (ENDLIST). `None`: live, sliding window.
    pub vod_seconds: Option<f64>,
    /// Fragmented MP4 segments (EXT-X-MAP) instead of MPEG-TS.
    pub fmp4: bool,
    /// Frames a second.
    pub fps: u32,
    /// A sound track of clicks on known frames ([`sound::clicks_source`]), AAC in each
    /// rendition.
    pub audio: bool,
}

impl Default for OriginOptions {
    fn default() -> Self {
        OriginOptions {
            width: 640,
            height: 360,
            segment_secs: 1,
            vod_seconds: None,
            fmp4: false,
            fps: FPS,
            audio: false,
        }
    }
}

/// Live (or VOD) HLS with two renditions, the lower listed first in the master, made by
/// the real ffmpeg CLI in real time (`-re`) and served over HTTP.
pub struct LiveOrigin {
    pub dir: tempfile::TempDir,
    pub origin: Origin,
    ffmpeg: Option<Child>,
    pub started: Instant,
    pub options: OriginOptions,
}

impl LiveOrigin {
    pub fn start(options: OriginOptions) -> LiveOrigin {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args: Vec<String> = vec!["-hide_banner".into(), "-loglevel".into(), "error".into()];
        if options.vod_seconds.is_none() {
            args.push("-re".into());
        }
        args.extend(
            marked_source_args(options.width, options.height, options.vod_seconds)
                .into_iter()
                .map(|a| a.replace(&format!("rate={FPS}"), &format!("rate={}", options.fps))),
        );
        let flags = if options.vod_seconds.is_some() {
            "independent_segments+temp_file"
        } else {
            "delete_segments+independent_segments+temp_file"
        };
        if options.audio {
            args.extend(["-f", "lavfi", "-i"].map(String::from));
            args.push(sound::clicks_source(options.vod_seconds));
        }
        args.extend(["-map".into(), "[lo]".into(), "-map".into(), "[hi]".into()]);
        if options.audio {
            args.extend(
                ["-map", "2:a", "-map", "2:a", "-c:a", "aac", "-b:a", "128k"].map(String::from),
            );
        }
        args.extend(live_x264_args(options.fps * options.segment_secs));
        for a in [
            "-b:v:0",
            "300k",
            "-b:v:1",
            "1500k",
            "-f",
            "hls",
            "-hls_time",
            &options.segment_secs.to_string(),
            "-hls_list_size",
            if options.vod_seconds.is_some() {
                "0"
            } else {
                "6"
            },
            "-hls_flags",
            flags,
            "-master_pl_name",
            "master.m3u8",
            "-var_stream_map",
            if options.audio {
                "v:0,a:0,name:low v:1,a:1,name:high"
            } else {
                "v:0,name:low v:1,name:high"
            },
            "-hls_segment_filename",
        ] {
            args.push(a.to_string());
        }
        if options.fmp4 {
            args.push(dir.path().join("%v_%05d.m4s").display().to_string());
            args.extend(["-hls_segment_type".into(), "fmp4".into()]);
            args.extend(["-hls_fmp4_init_filename".into(), "%v_init.mp4".into()]);
        } else {
            args.push(dir.path().join("%v_%05d.ts").display().to_string());
        }
        if options.vod_seconds.is_some() {
            args.extend(["-hls_playlist_type".into(), "vod".into()]);
        }
        args.push(dir.path().join("%v.m3u8").display().to_string());
        let started = Instant::now();
        let mut child = Command::new("ffmpeg")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("ffmpeg is installed");
        let origin = Origin::serve(dir.path());
        if options.vod_seconds.is_some() {
            assert!(child.wait().unwrap().success(), "ffmpeg made the VOD");
        } else {
            // Wait until the master and two segments of the high rendition exist.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !(dir.path().join("master.m3u8").exists()
                && count_segments(dir.path(), "high") >= 2)
            {
                assert!(Instant::now() < deadline, "the live origin did not start");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        LiveOrigin {
            dir,
            origin,
            ffmpeg: Some(child),
            started,
            options,
        }
    }

    pub fn master_url(&self) -> String {
        self.origin.url("master.m3u8")
    }

    /// The newest media sequence number the high rendition's playlist lists.
    pub fn newest_segment(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.dir.path().join("high.m3u8")).ok()?;
        let first: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
            .trim()
            .parse()
            .ok()?;
        let count = text.lines().filter(|l| l.ends_with(".ts")).count() as u64;
        (count > 0).then(|| first + count - 1)
    }
}

fn count_segments(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.starts_with(prefix) && n.ends_with(".ts")
                })
                .count()
        })
        .unwrap_or(0)
}

impl Drop for LiveOrigin {
    fn drop(&mut self) {
        if let Some(mut c) = self.ffmpeg.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads the frame number from a luma plane (or any single-channel image).
pub fn read_marker(luma: &[u8], stride: usize, width: u32, height: u32) -> u64 {
    let strip = (height as f64 / 15.0).max(4.0);
    let row = (strip / 2.0) as usize;
    (0..MARKER_BITS)
        .map(|b| {
            let x = ((b as f64 + 0.5) * width as f64 / MARKER_BITS as f64) as usize;
            ((luma[row * stride + x] > 128) as u64) << b
        })
        .sum()
}

/// The lucid binary built for these tests.
pub fn lucid() -> Command {
    // LUCID_TEST_BIN runs the suite against another build (an older one, to check that a
    // new test fails there).
    let bin = std::env::var_os("LUCID_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lucid")));
    let mut cmd = Command::new(bin);
    // Tests never see the user's own effects or presets.
    // LUCID_TEST_LOG sets the children's RUST_LOG when a failing test needs more detail.
    let log = std::env::var("LUCID_TEST_LOG").unwrap_or_else(|_| "info".into());
    cmd.env("RUST_LOG", log)
        .env("XDG_CONFIG_HOME", "/nonexistent/lucid-test-config")
        .stdin(Stdio::null());
    cmd
}

/// Runs a command with a hard time limit (tests must end by themselves).
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let s = child.wait().unwrap();
            let err = String::from_utf8_lossy(&err_t.join().unwrap()).to_string();
            panic!("command ran past {limit:?} and was killed ({s}); stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// Reads a spawned child's piped stderr to the end on a thread of its own (so the child
/// never blocks on a full pipe); join the handle for the text.
pub fn collect_stderr(child: &mut Child) -> JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    })
}

/// Decodes a video file with ffmpeg-next: its size and every frame's marker.
pub fn file_markers(path: &Path) -> (u32, u32, Vec<u64>) {
    let mut frames = Vec::new();
    let (w, h) = decode_file(path, |f| {
        frames.push(read_marker(f.data(0), f.stride(0), f.width(), f.height()));
    });
    (w, h, frames)
}

/// Calls `each` for every decoded frame (YUV420P) of a file; returns the size.
pub fn decode_file(path: &Path, mut each: impl FnMut(&ff::frame::Video)) -> (u32, u32) {
    decode_timed(path, |_, f| each(f))
}

/// Calls `each` with every decoded frame of a file and its time in seconds (its timestamp
/// in its stream's time base); returns the size.
pub fn decode_timed(path: &Path, mut each: impl FnMut(f64, &ff::frame::Video)) -> (u32, u32) {
    ff::init().unwrap();
    let mut input = ff::format::input(&path).expect("the file opens");
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .expect("a video stream");
    let (idx, tb) = (stream.index(), f64::from(stream.time_base()));
    let ctx = ff::codec::Context::from_parameters(stream.parameters()).unwrap();
    let mut dec = ctx.decoder().video().unwrap();
    let (w, h) = (dec.width(), dec.height());
    let mut frame = ff::frame::Video::empty();
    let mut handle = |dec: &mut ff::decoder::Video| {
        while dec.receive_frame(&mut frame).is_ok() {
            each(frame.timestamp().unwrap_or(0) as f64 * tb, &frame);
        }
    };
    for (s, packet) in input.packets() {
        if s.index() == idx {
            dec.send_packet(&packet).unwrap();
            handle(&mut dec);
        }
    }
    dec.send_eof().unwrap();
    handle(&mut dec);
    (w, h)
}

/// A parsed YUV4MPEG2 stream.
pub struct Y4m {
    pub width: u32,
    pub height: u32,
    pub rate: String,
    /// Each frame's planes, concatenated.
    pub frames: Vec<Vec<u8>>,
}

impl Y4m {
    /// The Cb and Cr samples at a frame's centre (4:2:0 planes).
    pub fn centre_chroma(&self, frame: &[u8]) -> (u8, u8) {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let at = (ch / 2) * cw + cw / 2;
        (frame[w * h + at], frame[w * h + cw * ch + at])
    }

    pub fn parse(bytes: &[u8]) -> Y4m {
        let nl = bytes
            .iter()
            .position(|b| *b == b'\n')
            .expect("a header line");
        let header = std::str::from_utf8(&bytes[..nl]).unwrap();
        assert!(header.starts_with("YUV4MPEG2 "), "header: {header}");
        let field = |p: char| {
            header
                .split(' ')
                .find_map(|t| t.strip_prefix(p))
                .unwrap_or_else(|| panic!("no {p} in {header}"))
                .to_string()
        };
        let width: u32 = field('W').parse().unwrap();
        let height: u32 = field('H').parse().unwrap();
        let rate = field('F');
        let size = (width * height + 2 * width.div_ceil(2) * height.div_ceil(2)) as usize;
        let mut frames = Vec::new();
        let mut pos = nl + 1;
        while pos < bytes.len() {
            assert!(bytes[pos..].starts_with(b"FRAME"), "frame header at {pos}");
            let fnl = pos + bytes[pos..].iter().position(|b| *b == b'\n').unwrap();
            let start = fnl + 1;
            if start + size > bytes.len() {
                break; // a frame cut short by a kill; everything before it counts
            }
            frames.push(bytes[start..start + size].to_vec());
            pos = start + size;
        }
        Y4m {
            width,
            height,
            rate,
            frames,
        }
    }

    pub fn markers(&self) -> Vec<u64> {
        self.frames
            .iter()
            .map(|f| read_marker(f, self.width as usize, self.width, self.height))
            .collect()
    }
}

/// Frame numbers strictly increase, none repeats; returns how many were skipped in gaps.
pub fn assert_in_order(markers: &[u64]) -> u64 {
    assert!(!markers.is_empty(), "no frames");
    let mut gaps = 0;
    for w in markers.windows(2) {
        assert!(
            w[1] > w[0],
            "frames out of order or repeated: {} then {} in {markers:?}",
            w[0],
            w[1]
        );
        gaps += w[1] - w[0] - 1;
    }
    gaps
}

/// The newest `--stats-json` line of a running Lucid, if it wrote one yet.
pub fn newest_stats(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(text.lines().last()?).ok()
}

/// Waits (up to a minute) until a running Lucid's stats say it presented `frames`.
pub fn wait_for_presented(stats: &Path, frames: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while newest_stats(stats).and_then(|s| s["presented"].as_u64()) < Some(frames) {
        assert!(
            Instant::now() < deadline,
            "fewer than {frames} frames presented"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `--stats-json` line of a run.
pub fn last_stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).expect("stats file");
    serde_json::from_str(text.lines().last().expect("a stats line")).unwrap()
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A temp path with a name.
pub fn temp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Sends a signal (`"INT"`, `"TERM"`, `"KILL"`) to a process with the `kill` command.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Waits for a child to exit, up to `limit`; kills it and fails the test past that.
pub fn wait_with_limit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child ran past {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Bad input: the exit code, exactly one `error:` line containing `needle`, no panic or
/// internal error, nothing on stdout.
pub fn assert_one_clear_error(out: &std::process::Output, code: i32, needle: &str) {
    let err = stderr_of(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line; stderr:\n{err}");
    assert!(
        errors[0].contains(needle),
        "{needle:?} not in {:?}",
        errors[0]
    );
    assert!(
        !err.contains("panicked")
            && !err.contains("RUST_BACKTRACE")
            && !err.contains("internal error"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout");
}
