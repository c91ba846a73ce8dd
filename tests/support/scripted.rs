//! A fault-injecting live origin on 127.0.0.1. Segments are made in advance by the real
//! ffmpeg CLI (frame numbers as markers); the live media playlist is computed at request
//! time from a script: which segment is published when, where the timeline breaks, where
//! the broadcaster reconnects (media sequence back to 0, new segment names), and which
//! requests fail or return damaged bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{FPS, live_x264_args, marked_source_args_from};

/// What happens when a segment is requested.
#[derive(Clone, Debug, PartialEq)]
pub enum SegmentFault {
    /// Served intact.
    None,
    /// The first `n` requests get `status`, later ones the segment.
    FailTimes(u16, u32),
    /// Every request gets `status`.
    Always(u16),
    /// Only the first part of the file (a damaged transfer).
    Truncate(f64),
    /// The middle third overwritten with garbage bytes.
    Garbage,
}

/// One published segment.
#[derive(Clone, Debug)]
pub struct Entry {
    pub file: PathBuf,
    pub duration: f64,
    /// EXT-X-DISCONTINUITY before this segment.
    pub discontinuity: bool,
    /// The broadcaster reconnected: a new session starts here (sequence 0, new names).
    pub new_session: bool,
    pub fault: SegmentFault,
    /// Publishing pauses this long before this segment (an outage).
    pub delay_before: f64,
}

/// Makes `seconds` of marked video starting at frame `first`, cut into 1 s MPEG-TS
/// segments by ffmpeg's HLS muxer. Returns the segments in order.
pub fn make_segments(
    dir: &Path,
    name: &str,
    first: u64,
    width: u32,
    height: u32,
    seconds: u32,
) -> Vec<Entry> {
    let playlist = dir.join(format!("{name}.m3u8"));
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(marked_source_args_from(
            first,
            width,
            height,
            Some(seconds as f64),
        ))
        .args(["-map", "[hi]"])
        .args(live_x264_args(FPS))
        .args([
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
            "-hls_segment_filename",
        ])
        .arg(dir.join(format!("{name}_%03d.ts")))
        .arg(&playlist)
        .args(["-map", "[lo]", "-f", "null", "-"])
        .status()
        .expect("ffmpeg is installed");
    assert!(status.success(), "ffmpeg made {name}");
    let text = std::fs::read_to_string(&playlist).unwrap();
    let mut entries = Vec::new();
    let mut duration = 0.0;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            duration = d.trim_end_matches(',').parse().unwrap();
        } else if line.ends_with(".ts") {
            entries.push(Entry {
                file: dir.join(line),
                duration,
                discontinuity: false,
                new_session: false,
                fault: SegmentFault::None,
                delay_before: 0.0,
            });
        }
    }
    entries
}

struct State {
    entries: Vec<Entry>,
    /// Requests served per entry (for FailTimes).
    hits: Vec<u32>,
    /// Remaining playlist failures (status) before playlists are served again.
    playlist_failures: Vec<u16>,
    log: Vec<String>,
    /// ENDLIST after the last entry; without it the stream just stops (an outage).
    ends: bool,
}

/// The origin. `live.m3u8` lists a sliding window of what the script has published by now;
/// after the last entry it adds ENDLIST, so every test ends by itself.
pub struct ScriptedOrigin {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Segments listed in each live playlist.
const WINDOW: usize = 5;
/// Segments published before the first request, as on a stream that is already live.
const PUBLISHED_AT_START: usize = 3;

impl ScriptedOrigin {
    pub fn start(entries: Vec<Entry>) -> ScriptedOrigin {
        Self::start_with(entries, true)
    }

    /// `ends`: whether the playlist gets ENDLIST after the last entry.
    pub fn start_with(entries: Vec<Entry>, ends: bool) -> ScriptedOrigin {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = server.server_addr().to_ip().unwrap().port();
        let hits = vec![0; entries.len()];
        let state = Arc::new(Mutex::new(State {
            entries,
            hits,
            playlist_failures: Vec::new(),
            log: Vec::new(),
            ends,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                let Ok(Some(req)) = server.recv_timeout(Duration::from_millis(20)) else {
                    continue;
                };
                let url = req.url().to_string();
                let (status, ctype, body) = respond(&st, &url, started.elapsed().as_secs_f64());
                st.lock().unwrap().log.push(format!("{url} {status}"));
                let resp = tiny_http::Response::from_data(body)
                    .with_status_code(status)
                    .with_header(tiny_http::Header::from_bytes("Content-Type", ctype).unwrap());
                let _ = req.respond(resp);
            }
        });
        ScriptedOrigin {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn master_url(&self) -> String {
        format!("http://127.0.0.1:{}/master.m3u8", self.port)
    }

    /// The next `statuses.len()` media playlist requests fail with these statuses.
    pub fn fail_playlists(&self, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .playlist_failures
            .extend_from_slice(statuses);
    }

    /// Every request so far, as "url status".
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(state: &Mutex<State>, url: &str, elapsed: f64) -> (u16, &'static str, Vec<u8>) {
    let mut st = state.lock().unwrap();
    let path = url.split('?').next().unwrap_or("");
    const M3U8: &str = "application/vnd.apple.mpegurl";
    if path == "/master.m3u8" {
        let body = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1500000,RESOLUTION=640x360\nlive.m3u8\n";
        return (200, M3U8, body.as_bytes().to_vec());
    }
    if path == "/live.m3u8" {
        if !st.playlist_failures.is_empty() {
            return (
                st.playlist_failures.remove(0),
                "text/plain",
                b"unavailable".to_vec(),
            );
        }
        return (
            200,
            M3U8,
            media_playlist(&st.entries, elapsed, st.ends).into_bytes(),
        );
    }
    // Segments: /s{session}/{sequence}-{index}.ts
    let Some(index) = path
        .strip_suffix(".ts")
        .and_then(|p| p.rsplit('-').next())
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|i| *i < st.entries.len())
    else {
        return (404, "text/plain", b"not found".to_vec());
    };
    st.hits[index] += 1;
    let hits = st.hits[index];
    let entry = &st.entries[index];
    let mut bytes = std::fs::read(&entry.file).unwrap();
    match entry.fault {
        SegmentFault::None => {}
        SegmentFault::FailTimes(status, n) if hits <= n => {
            return (status, "text/plain", Vec::new());
        }
        SegmentFault::FailTimes(..) => {}
        SegmentFault::Always(status) => return (status, "text/plain", Vec::new()),
        SegmentFault::Truncate(f) => bytes.truncate((bytes.len() as f64 * f) as usize),
        SegmentFault::Garbage => {
            let (a, b) = (bytes.len() / 3, 2 * bytes.len() / 3);
            for (i, byte) in bytes[a..b].iter_mut().enumerate() {
                *byte = (i as u32).wrapping_mul(2654435761).to_le_bytes()[1];
            }
        }
    }
    (200, "video/mp2t", bytes)
}

/// The live media playlist at `elapsed` seconds: entries are published one per segment
/// duration (a few already at start); the window never spans a new session.
fn media_playlist(entries: &[Entry], elapsed: f64, ends: bool) -> String {
    let mut published = PUBLISHED_AT_START;
    let mut t = 0.0;
    while published < entries.len() {
        t += entries[published - 1].duration + entries[published].delay_before;
        if t > elapsed {
            break;
        }
        published += 1;
    }
    let session_start = (0..published)
        .rev()
        .find(|i| entries[*i].new_session)
        .unwrap_or(0);
    let first = published.saturating_sub(WINDOW).max(session_start);
    let session = (0..=first).filter(|i| entries[*i].new_session).count();
    let target = entries
        .iter()
        .map(|e| e.duration.ceil() as u64)
        .max()
        .unwrap_or(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
        first - session_start
    );
    for (i, e) in entries.iter().enumerate().take(published).skip(first) {
        if e.discontinuity && i != first {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        out.push_str(&format!(
            "#EXTINF:{:.6},\ns{session}/{}-{i}.ts\n",
            e.duration,
            i - session_start
        ));
    }
    if published == entries.len() && ends {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}
