//! The HLS network thread: master -> rendition -> live playlist polling -> segment bytes.
//!
//! Every body is read in chunks against a cap (playlists [`playlist::MAX_PLAYLIST_BYTES`],
//! segments [`playlist::segment_limit`]) and every wait, retry and read observes the stop
//! flag, so a stop request is seen within [`STOP_POLL`] whatever the network does.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use m3u8_rs::{ByteRange, KeyMethod, MediaPlaylist, Playlist};
use tracing::{debug, info, warn};
use url::Url;

use super::edge::{LiveEdge, ReloadPlan, Sighting};
use super::playlist::{self, LiveWindow, Rendition, WindowStep};
use crate::error::HlsError;
use crate::lifecycle::Lifecycle;
use crate::redact::Redacted;

mod network;

use network::*;

type Result<T, E = HlsError> = std::result::Result<T, E>;

/// A stream resolved to its media playlist: the rendition chosen (behind a master
/// playlist), the media playlist's URL, and the playlist.
type Resolved = (Option<Rendition>, Url, MediaPlaylist);

/// Segments buffered between the network thread and the decoder. Small on purpose: the
/// decoder is paced by presentation, and anything more is latency.
const SEGMENT_QUEUE: usize = 3;

/// Longest a wait goes without looking at the stop flag.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// How often, and how patiently, a request is retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Requests made in total before giving up.
    pub attempts: u32,
    /// Delay before the first retry; doubles each time up to `max_delay`.
    pub first_delay: Duration,
    /// Upper bound for the delay between two attempts.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Opening a stream: a few quick retries, so a typo fails in seconds but a stream that
    /// is just appearing gets its chance.
    pub const STARTUP: RetryPolicy = RetryPolicy {
        attempts: 4,
        first_delay: Duration::from_millis(500),
        max_delay: Duration::from_secs(2),
    };
    /// A single request: the caller does its own waiting (playlists polled while a stream
    /// is not live yet or during an outage).
    pub const ONCE: RetryPolicy = RetryPolicy {
        attempts: 1,
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };
    /// A segment during playback: retried briefly, then skipped so playback goes on.
    pub const SEGMENT: RetryPolicy = RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(1),
    };
}

/// Opens HLS streams. Holds the HTTP client so connections are reused across requests, and
/// the stop flag every wait and read looks at.
#[derive(Clone)]
pub struct HlsSource {
    http: reqwest::blocking::Client,
    lifecycle: Lifecycle,
    /// A network thread's own: set when its stream's reader is closed (the decoder is
    /// done with it), so the thread ends even while a copy of the reader lives on.
    closed: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// An opened HLS stream: the rendition chosen and the byte stream the decoder reads.
pub struct HlsStream {
    /// The rendition being played.
    pub rendition: Option<Rendition>,
    /// True unless the playlist is finished (ENDLIST or PLAYLIST-TYPE:VOD).
    pub live: bool,
    /// True when segments are fragmented MP4 (EXT-X-MAP), false for MPEG-TS.
    pub fmp4: bool,
    /// Segment bytes in playback order, ending when the stream ends or fails.
    pub reader: SegmentReader,
    /// The live edge, for latency control (also set for VOD, where nothing steers by it).
    pub edge: LiveEdge,
    /// EXT-X-TARGETDURATION: the longest segment.
    pub target_duration: Duration,
    /// The network thread.
    pub thread: JoinHandle<()>,
}

/// What the network thread sends the decoder.
#[derive(Debug)]
pub enum Chunk {
    /// Segment (or init segment) bytes.
    Data(Vec<u8>),
    /// The timeline breaks here: a DISCONTINUITY, a new broadcaster session, segments
    /// skipped, or a gap. MPEG-TS PIDs and timestamps may change, so the decoder opens a
    /// new demuxer. `gap` is stream time that passes with no media (`EXT-X-GAP`
    /// segments): what follows is presented that much later, so the picture holds instead
    /// of the clock counting a stall.
    Break {
        /// Stream time missing before what follows.
        gap: Duration,
    },
}

/// Reads the concatenated segments the network thread delivers. MPEG-TS segments concatenate
/// into one valid transport stream, and an fMP4 init segment followed by its media segments
/// is one valid fragmented MP4, so one demuxer reads everything up to a [`Chunk::Break`],
/// where `read` reports the end and [`SegmentReader::next_timeline`] gives the reader for
/// what follows.
pub struct SegmentReader {
    shared: Arc<Mutex<ReaderState>>,
    failure: FailureSlot,
    /// Set by [`close`](Self::close): the network thread stops at its next step.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

/// Where the network thread leaves the error that ended the stream.
type FailureSlot = Arc<Mutex<Option<HlsError>>>;

struct ReaderState {
    rx: Receiver<Chunk>,
    current: Vec<u8>,
    pos: usize,
    /// Set at a break: the gap before the next timeline.
    at_break: Option<Duration>,
}

impl SegmentReader {
    fn new(rx: Receiver<Chunk>) -> Self {
        SegmentReader {
            shared: Arc::new(Mutex::new(ReaderState {
                rx,
                current: Vec::new(),
                pos: 0,
                at_break: None,
            })),
            failure: Arc::default(),
            closed: Arc::default(),
        }
    }

    /// The decoder is done with this stream: its network thread stops fetching (it would
    /// otherwise only notice when every copy of the reader is gone, and fill its queue
    /// first).
    pub fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// After `read` returned 0: a reader for the next timeline, and the stream time missing
    /// before it, if the stream goes on after a break; `None` if it ended.
    pub fn next_timeline(&self) -> Option<(SegmentReader, Duration)> {
        let mut state = self.shared.lock().ok()?;
        let gap = state.at_break.take()?;
        Some((self.handle(), gap))
    }

    /// A handle that outlives the demuxer that owns this reader.
    pub fn handle(&self) -> SegmentReader {
        SegmentReader {
            shared: self.shared.clone(),
            failure: self.failure.clone(),
            closed: self.closed.clone(),
        }
    }

    /// The error that ended the stream, if it did not end normally.
    pub fn take_failure(&self) -> Option<HlsError> {
        self.failure.lock().ok()?.take()
    }
}

impl Read for SegmentReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Ok(mut state) = self.shared.lock() else {
            return Ok(0);
        };
        if state.at_break.is_some() {
            return Ok(0);
        }
        while state.pos >= state.current.len() {
            match state.rx.recv() {
                Ok(Chunk::Data(chunk)) => {
                    state.current = chunk;
                    state.pos = 0;
                }
                Ok(Chunk::Break { gap }) => {
                    state.at_break = Some(gap);
                    return Ok(0);
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(state.current.len() - state.pos);
        let pos = state.pos;
        buf[..n].copy_from_slice(&state.current[pos..pos + n]);
        state.pos += n;
        Ok(n)
    }
}

impl HlsSource {
    /// A client with timeouts suited to live video (a stuck request must not outlast a few
    /// segments) that gives up on any wait once `stop` is set.
    pub fn new(lifecycle: Lifecycle) -> Self {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("lucid/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap_or_default();
        HlsSource {
            http,
            lifecycle,
            closed: None,
        }
    }

    fn stopped(&self) -> bool {
        self.lifecycle.stopping()
            || self
                .closed
                .as_ref()
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Sleeps in short steps so a stop request is seen quickly. `Err(Stopped)` when stopped.
    fn sleep_until(&self, deadline: Instant) -> Result<()> {
        loop {
            if self.stopped() {
                return Err(HlsError::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            std::thread::sleep((deadline - now).min(STOP_POLL));
        }
    }

    /// Fetches the playlist at `url`, picks the best rendition of a master, and starts the
    /// network thread. Fails with a typed error when the stream cannot be played at all.
    pub fn open(&self, url: &Url, wait: Duration) -> Result<HlsStream> {
        let ((rendition, media_url, media), faulted) = self.wait_for_stream(url, wait)?;
        if media.segments.is_empty() && playlist::is_finite(&media) {
            return Err(HlsError::Unplayable {
                url: Redacted::url(&media_url),
                reason: "the playlist has ended and lists no segments".into(),
            });
        }
        check_encryption(&media_url, &media)?;
        let live = !playlist::is_finite(&media);
        let fmp4 = media.segments.iter().any(|s| s.map.is_some());
        let (tx, rx) = bounded(SEGMENT_QUEUE);
        let reader = SegmentReader::new(rx);
        let edge = LiveEdge::default();
        if faulted {
            edge.note_retry();
        }
        let target_duration = playlist::target_secs(&media);
        let worker = NetworkThread {
            http: HlsSource {
                closed: Some(reader.closed.clone()),
                ..self.clone()
            },
            entry: url.clone(),
            wait,
            reconnected: false,
            bandwidth: rendition.as_ref().map(|r| r.bandwidth),
            url: media_url,
            tx,
            failure: reader.failure.clone(),
            loaded_map: None,
            sent_any: false,
            edge: edge.clone(),
            sent_end: Duration::ZERO,
            pending_gap: Duration::ZERO,
        };
        let thread = self.lifecycle.spawn("lucid-hls", move || worker.run(media));
        Ok(HlsStream {
            rendition,
            live,
            fmp4,
            reader,
            edge,
            target_duration,
            thread,
        })
    }

    /// Resolves `url` to a media playlist with segments, waiting up to `wait` while the
    /// stream is not live yet (any transient error: 404 before the broadcaster connects,
    /// 5xx, a server message such as "Stream open failed", an empty live playlist while
    /// Daydream warms up). Polls at most 2 s apart, so playback starts within one poll of
    /// the stream appearing. Other errors fail at once; an unreachable host after a few tries.
    /// Also says whether the last failed try was a fault of a stream that is up.
    fn wait_for_stream(&self, url: &Url, wait: Duration) -> Result<(Resolved, bool)> {
        let deadline = Instant::now() + wait;
        let mut delay = Duration::from_millis(500);
        let mut attempts = 0u32;
        let mut unreachable = 0u32;
        // The last try failed on a stream that is up (not one that is not live yet): the
        // playlist that follows is seen late by the retry's delay.
        let mut faulted = false;
        loop {
            attempts += 1;
            let err = match self.resolve_media(url) {
                Ok((_, media_url, media))
                    if media.segments.is_empty() && !playlist::is_finite(&media) =>
                {
                    HlsError::EmptyLive {
                        url: Redacted::url(&media_url),
                    }
                }
                Ok(found) => {
                    if let Some(r) = &found.0 {
                        info!("rendition: {r}");
                    }
                    return Ok((found, faulted));
                }
                Err(e @ HlsError::Unreachable { .. }) => {
                    unreachable += 1;
                    if unreachable >= RetryPolicy::STARTUP.attempts {
                        return Err(e);
                    }
                    e
                }
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            faulted = !err.means_not_live_yet();
            let now = Instant::now();
            if now >= deadline {
                return Err(err.with_attempts(attempts));
            }
            let pause = delay.min(deadline - now);
            warn!(
                "waiting for the stream ({}); retrying in {:.1}s, giving up in {:.0}s",
                err.short_reason(),
                pause.as_secs_f64(),
                (deadline - now).as_secs_f64()
            );
            self.sleep_until(now + pause)?;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// One try: master (if any) -> chosen rendition -> its media playlist.
    fn resolve_media(&self, url: &Url) -> Result<Resolved> {
        let (final_url, body) = self.get(url, None, playlist::MAX_PLAYLIST_BYTES, "playlist")?;
        match playlist::parse(&final_url, &body)? {
            Playlist::MasterPlaylist(master) => {
                let rendition = playlist::choose_rendition(&final_url, &master)?;
                let (media_url, media) = self.get_media(&rendition.url)?;
                Ok((Some(rendition), media_url, media))
            }
            Playlist::MediaPlaylist(mut m) => {
                playlist::check_media(&final_url, &mut m)?;
                Ok((None, final_url, m))
            }
        }
    }

    /// One request for a URL that must be a media playlist (a variant, or a reload).
    fn get_media(&self, url: &Url) -> Result<(Url, MediaPlaylist)> {
        let (final_url, body) = self.get(url, None, playlist::MAX_PLAYLIST_BYTES, "playlist")?;
        match playlist::parse(&final_url, &body)? {
            Playlist::MediaPlaylist(mut m) => {
                playlist::check_media(&final_url, &mut m)?;
                Ok((final_url, m))
            }
            Playlist::MasterPlaylist(_) => Err(HlsError::NotAPlaylist {
                url: Redacted::url(&final_url),
                reason: "expected a media playlist, got a master playlist".into(),
            }),
        }
    }

    /// GET with bounded, reported retries on transient failures (connection failures, 404
    /// for a stream that is not up yet, 429, 5xx). Returns the final URL after redirects
    /// and the body, at most `limit` bytes.
    fn get_retrying(
        &self,
        url: &Url,
        range: Option<&ByteRange>,
        limit: u64,
        policy: RetryPolicy,
        what: &'static str,
    ) -> Result<(Url, Vec<u8>)> {
        let mut delay = policy.first_delay;
        let mut attempt = 1;
        loop {
            let err = match self.get(url, range, limit, what) {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            if !err.is_transient() || attempt >= policy.attempts {
                return Err(err.with_attempts(attempt));
            }
            warn!(
                "{what} {}: {}; retrying in {:.1}s (attempt {}/{})",
                Redacted::url(url),
                err.short_reason(),
                delay.as_secs_f64(),
                attempt + 1,
                policy.attempts
            );
            self.sleep_until(Instant::now() + delay)?;
            delay = (delay * 2).min(policy.max_delay);
            attempt += 1;
        }
    }

    /// One GET. The body is read in chunks, so a body over `limit` (or an endless one)
    /// fails as soon as it passes the cap, and a stop request is seen between chunks.
    pub fn get(
        &self,
        url: &Url,
        range: Option<&ByteRange>,
        limit: u64,
        what: &'static str,
    ) -> Result<(Url, Vec<u8>)> {
        if self.stopped() {
            return Err(HlsError::Stopped);
        }
        let mut req = self.http.get(url.clone());
        if let Some(r) = range {
            // Offsets were filled in and checked by `playlist::check_media`.
            let start = r.offset.unwrap_or(0);
            let end = start.saturating_add(r.length.saturating_sub(1));
            req = req.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        let unreachable = |e: reqwest::Error| {
            if e.is_redirect() {
                // A redirect loop answers the same way however long Lucid waits.
                return HlsError::Redirects {
                    url: Redacted::url(url),
                    reason: root_cause(&e),
                };
            }
            HlsError::Unreachable {
                url: Redacted::url(url),
                reason: root_cause(&e),
                source: Some(Box::new(e.without_url())),
            }
        };
        let mut resp = req.send().map_err(unreachable)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(HlsError::HttpStatus {
                url: Redacted::url(url),
                status: status.as_u16(),
                attempts: 1,
            });
        }
        let final_url = resp.url().clone();
        let too_large = || HlsError::TooLarge {
            url: Redacted::url(&final_url),
            what,
            limit,
        };
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(resp.content_length().unwrap_or(0) as usize);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if self.stopped() {
                return Err(HlsError::Stopped);
            }
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(HlsError::Unreachable {
                        url: Redacted::url(url),
                        reason: io_cause(&e),
                        source: Some(Box::new(e)),
                    });
                }
            };
            if body.len() as u64 + n as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&buf[..n]);
        }
        Ok((final_url, body))
    }
}

/// reqwest wraps the useful part ("Connection refused") several errors deep.
fn root_cause(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "timed out".to_string();
    }
    innermost(err)
}

fn io_cause(err: &std::io::Error) -> String {
    let msg = innermost(err);
    if err.kind() == std::io::ErrorKind::TimedOut || msg.contains("timed out") {
        return "timed out".to_string();
    }
    msg
}

/// The innermost cause's message, with any URL in it masked.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        msg = e.to_string();
        cur = e.source();
    }
    crate::redact::redact_text(&msg).into_owned()
}

fn check_encryption(url: &Url, media: &MediaPlaylist) -> Result<()> {
    for seg in &media.segments {
        if let Some(key) = &seg.key
            && key.method != KeyMethod::None
        {
            return Err(HlsError::Unplayable {
                url: Redacted::url(url),
                reason: format!("encrypted HLS ({:?}) is not supported", key.method),
            });
        }
    }
    Ok(())
}
