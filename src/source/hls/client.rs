//! The HLS network thread: master -> rendition -> live playlist polling -> segment bytes.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use m3u8_rs::{ByteRange, KeyMethod, MediaPlaylist, Playlist};
use tracing::{debug, info, warn};
use url::Url;

use super::playlist::{self, Rendition};
use crate::error::{LucidError, Result};

/// Segments buffered between the network thread and the decoder. Small on purpose: the
/// decoder is paced by presentation, and anything more is latency.
const SEGMENT_QUEUE: usize = 3;

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

/// Opens HLS streams. Holds the HTTP client so connections are reused across requests.
#[derive(Clone)]
pub struct HlsSource {
    http: reqwest::blocking::Client,
}

/// An opened HLS stream: the rendition chosen and the byte stream the decoder reads.
pub struct HlsStream {
    /// The rendition being played.
    pub rendition: Option<Rendition>,
    /// True unless the playlist is a finished VOD (ENDLIST).
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

/// Where the live edge is, in the stream time the decoder gives frames (0 = the first frame
/// played): the end of the newest segment the playlist lists, and when it was first listed.
/// Shared by the network thread (writer) and the presentation clock (reader).
#[derive(Debug, Clone, Default)]
pub struct LiveEdge(Arc<Mutex<Option<EdgeSample>>>);

#[derive(Debug, Clone, Copy)]
struct EdgeSample {
    end: Duration,
    seen_at: Instant,
    segment: Duration,
}

impl LiveEdge {
    /// The live edge now: the newest segment's end, advanced by the time since it appeared
    /// (publishing runs in real time), but by at most one segment, so an outage does not
    /// make the edge run away.
    pub fn now(&self) -> Option<Duration> {
        let s = (*self.0.lock().ok()?)?;
        Some(s.end + s.seen_at.elapsed().min(s.segment))
    }

    /// Records the newest segment's end. It only moves forward, unless `rebase` (after a
    /// timeline break, positions before it no longer apply).
    fn update(&self, end: Duration, segment: Duration, rebase: bool) {
        if let Ok(mut slot) = self.0.lock() {
            let newer = rebase || slot.is_none_or(|s| end > s.end);
            if newer {
                *slot = Some(EdgeSample {
                    end,
                    seen_at: Instant::now(),
                    segment,
                });
            }
        }
    }

    /// A skipped segment never reaches the timeline: everything after it is that much
    /// earlier in stream time.
    fn shift_back(&self, by: Duration) {
        if let Ok(mut slot) = self.0.lock()
            && let Some(s) = slot.as_mut()
        {
            s.end = s.end.saturating_sub(by);
        }
    }
}

/// What the network thread sends the decoder.
#[derive(Debug)]
pub enum Chunk {
    /// Segment (or init segment) bytes.
    Data(Vec<u8>),
    /// The timeline breaks here: a DISCONTINUITY, a new broadcaster session, or segments
    /// skipped. MPEG-TS PIDs and timestamps may change, so the decoder opens a new demuxer.
    Break,
}

/// Reads the concatenated segments the network thread delivers. MPEG-TS segments concatenate
/// into one valid transport stream, and an fMP4 init segment followed by its media segments
/// is one valid fragmented MP4, so one demuxer reads everything up to a [`Chunk::Break`],
/// where `read` reports the end and [`SegmentReader::next_timeline`] gives the reader for
/// what follows.
pub struct SegmentReader {
    shared: Arc<Mutex<ReaderState>>,
    failure: FailureSlot,
}

/// Where the network thread leaves the error that ended the stream.
type FailureSlot = Arc<Mutex<Option<LucidError>>>;

struct ReaderState {
    rx: Receiver<Chunk>,
    current: Vec<u8>,
    pos: usize,
    at_break: bool,
}

impl SegmentReader {
    fn new(rx: Receiver<Chunk>) -> Self {
        SegmentReader {
            shared: Arc::new(Mutex::new(ReaderState {
                rx,
                current: Vec::new(),
                pos: 0,
                at_break: false,
            })),
            failure: Arc::default(),
        }
    }

    /// After `read` returned 0: a reader for the next timeline if the stream goes on after
    /// a break, `None` if it ended.
    pub fn next_timeline(&self) -> Option<SegmentReader> {
        let mut state = self.shared.lock().ok()?;
        if !state.at_break {
            return None;
        }
        state.at_break = false;
        Some(self.handle())
    }

    /// A handle that outlives the demuxer that owns this reader.
    pub fn handle(&self) -> SegmentReader {
        SegmentReader {
            shared: self.shared.clone(),
            failure: self.failure.clone(),
        }
    }

    /// The error that ended the stream, if it did not end normally.
    pub fn take_failure(&self) -> Option<LucidError> {
        self.failure.lock().ok()?.take()
    }
}

impl Read for SegmentReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock().expect("reader lock");
        if state.at_break {
            return Ok(0);
        }
        while state.pos >= state.current.len() {
            match state.rx.recv() {
                Ok(Chunk::Data(chunk)) => {
                    state.current = chunk;
                    state.pos = 0;
                }
                Ok(Chunk::Break) => {
                    state.at_break = true;
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

impl Default for HlsSource {
    fn default() -> Self {
        Self::new()
    }
}

impl HlsSource {
    /// A client with timeouts suited to live video: a stuck request must not outlast a few
    /// segments.
    pub fn new() -> Self {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("lucid/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("the TLS backend is compiled in");
        HlsSource { http }
    }

    /// Fetches the playlist at `url`, picks the best rendition of a master, and starts the
    /// network thread. Fails with a typed error when the stream cannot be played at all.
    pub fn open(&self, url: &Url, wait: Duration, stop: Arc<AtomicBool>) -> Result<HlsStream> {
        let (rendition, media_url, media) = self.wait_for_stream(url, wait, &stop)?;
        if media.segments.is_empty() && media.end_list {
            return Err(LucidError::Unplayable {
                source_name: media_url.to_string(),
                reason: "the playlist has ended and lists no segments".into(),
            });
        }
        check_encryption(&media_url, &media)?;
        let live = !media.end_list;
        let fmp4 = media.segments.iter().any(|s| s.map.is_some());
        let (tx, rx) = bounded(SEGMENT_QUEUE);
        let reader = SegmentReader::new(rx);
        let edge = LiveEdge::default();
        let target_duration = Duration::from_secs(media.target_duration.max(1));
        let worker = NetworkThread {
            http: self.clone(),
            entry: url.clone(),
            wait,
            reconnected: false,
            url: media_url,
            tx,
            stop,
            failure: reader.failure.clone(),
            loaded_map: None,
            sent_any: false,
            edge: edge.clone(),
            sent_end: Duration::ZERO,
        };
        let thread = std::thread::Builder::new()
            .name("lucid-hls".into())
            .spawn(move || worker.run(media))
            .expect("spawning a thread");
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
    /// stream is not live yet: 404 (Livepeer before the broadcaster connects), 5xx, "stream
    /// open failed", or a live playlist with no segments (Daydream's warm-up takes tens of
    /// seconds). Polls at most 2 s apart, so playback starts within one poll of the stream
    /// appearing. Other errors fail at once; an unreachable host after a few tries.
    fn wait_for_stream(
        &self,
        url: &Url,
        wait: Duration,
        stop: &AtomicBool,
    ) -> Result<(Option<Rendition>, Url, MediaPlaylist)> {
        let deadline = Instant::now() + wait;
        let mut delay = Duration::from_millis(500);
        let mut attempts = 0u32;
        let mut unreachable = 0u32;
        loop {
            attempts += 1;
            let err = match self.resolve_media(url) {
                Ok((_, media_url, media)) if media.segments.is_empty() && !media.end_list => {
                    LucidError::Unplayable {
                        source_name: media_url.to_string(),
                        reason: "the live playlist stayed empty".into(),
                    }
                }
                Ok(found) => {
                    if let Some(r) = &found.0 {
                        info!("rendition: {r}");
                    }
                    return Ok(found);
                }
                Err(LucidError::Unreachable { url, reason }) => {
                    unreachable += 1;
                    if unreachable >= RetryPolicy::STARTUP.attempts {
                        return Err(LucidError::Unreachable { url, reason });
                    }
                    LucidError::Unreachable { url, reason }
                }
                Err(e) if not_live_yet(&e) => e,
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            if now >= deadline || stop.load(Ordering::Relaxed) {
                return Err(match err {
                    LucidError::HttpStatus { url, status, .. } => LucidError::HttpStatus {
                        url,
                        status,
                        attempts,
                    },
                    other => other,
                });
            }
            let pause = delay.min(deadline - now);
            warn!(
                "waiting for the stream ({}); retrying in {:.1}s, giving up in {:.0}s",
                short_reason(&err),
                pause.as_secs_f64(),
                (deadline - now).as_secs_f64()
            );
            std::thread::sleep(pause);
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// One try: master (if any) -> chosen rendition -> its media playlist.
    fn resolve_media(&self, url: &Url) -> Result<(Option<Rendition>, Url, MediaPlaylist)> {
        let (final_url, body) = self.get(url, RetryPolicy::ONCE, "playlist")?;
        match playlist::parse(&final_url, &body)? {
            Playlist::MasterPlaylist(master) => {
                let rendition = playlist::choose_rendition(&final_url, &master)?;
                let (media_url, media) = self.get_media(&rendition.url)?;
                Ok((Some(rendition), media_url, media))
            }
            Playlist::MediaPlaylist(m) => Ok((None, final_url, m)),
        }
    }

    /// One request for a URL that must be a media playlist (a variant, or a reload).
    fn get_media(&self, url: &Url) -> Result<(Url, MediaPlaylist)> {
        let (final_url, body) = self.get(url, RetryPolicy::ONCE, "playlist")?;
        match playlist::parse(&final_url, &body)? {
            Playlist::MediaPlaylist(m) => Ok((final_url, m)),
            Playlist::MasterPlaylist(_) => Err(LucidError::NotAPlaylist {
                url: final_url.to_string(),
                reason: "expected a media playlist, got a master playlist".into(),
            }),
        }
    }

    /// GET with bounded, reported retries on connection failures, 404 (a stream that is not
    /// up yet), 429 and 5xx. Returns the final URL after redirects and the body.
    pub fn get(&self, url: &Url, policy: RetryPolicy, what: &str) -> Result<(Url, Vec<u8>)> {
        self.get_range(url, None, policy, what)
    }

    fn get_range(
        &self,
        url: &Url,
        range: Option<&ByteRange>,
        policy: RetryPolicy,
        what: &str,
    ) -> Result<(Url, Vec<u8>)> {
        let mut delay = policy.first_delay;
        let mut attempt = 1;
        loop {
            let err = match self.get_once(url, range) {
                Ok(ok) => return Ok(ok),
                Err(e) => e,
            };
            let retriable = match &err {
                LucidError::Unreachable { .. } => true,
                LucidError::HttpStatus { status, .. } => {
                    *status == 404 || *status == 429 || *status >= 500
                }
                _ => false,
            };
            if !retriable || attempt >= policy.attempts {
                return Err(match err {
                    LucidError::HttpStatus { url, status, .. } => LucidError::HttpStatus {
                        url,
                        status,
                        attempts: attempt,
                    },
                    other => other,
                });
            }
            warn!(
                "{what} {url}: {}; retrying in {:.1}s (attempt {}/{})",
                short_reason(&err),
                delay.as_secs_f64(),
                attempt + 1,
                policy.attempts
            );
            std::thread::sleep(delay);
            delay = (delay * 2).min(policy.max_delay);
            attempt += 1;
        }
    }

    fn get_once(&self, url: &Url, range: Option<&ByteRange>) -> Result<(Url, Vec<u8>)> {
        let mut req = self.http.get(url.clone());
        if let Some(r) = range {
            let start = r.offset.unwrap_or(0);
            let end = start + r.length.saturating_sub(1);
            req = req.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
        }
        let unreachable = |e: reqwest::Error| LucidError::Unreachable {
            url: url.to_string(),
            reason: root_cause(&e),
        };
        let resp = req.send().map_err(unreachable)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(LucidError::HttpStatus {
                url: url.to_string(),
                status: status.as_u16(),
                attempts: 1,
            });
        }
        let final_url = resp.url().clone();
        let body = resp.bytes().map_err(unreachable)?;
        Ok((final_url, body.to_vec()))
    }
}

/// Errors a stream gives before it is live (or while it is between sessions).
fn not_live_yet(err: &LucidError) -> bool {
    match err {
        LucidError::HttpStatus { status, .. } => *status == 404 || *status == 429 || *status >= 500,
        LucidError::NotAPlaylist { reason, .. } => {
            reason.to_lowercase().contains("stream open failed")
        }
        _ => false,
    }
}

fn short_reason(err: &LucidError) -> String {
    match err {
        LucidError::HttpStatus { status, .. } => format!("HTTP {status}"),
        LucidError::Unreachable { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// reqwest wraps the useful part ("Connection refused") several errors deep.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        msg = e.to_string();
        cur = e.source();
    }
    if err.to_string().contains("timed out") || msg.contains("timed out") {
        return "timed out".to_string();
    }
    msg
}

fn check_encryption(url: &Url, media: &MediaPlaylist) -> Result<()> {
    for seg in &media.segments {
        if let Some(key) = &seg.key
            && key.method != KeyMethod::None
        {
            return Err(LucidError::Unplayable {
                source_name: url.to_string(),
                reason: format!("encrypted HLS ({:?}) is not supported", key.method),
            });
        }
    }
    Ok(())
}

/// The init segment a media segment depends on: URI plus optional byte range.
type MapKey = (Url, Option<(u64, Option<u64>)>);

struct NetworkThread {
    http: HlsSource,
    /// The URL the user gave (master or media): where a reconnect starts over.
    entry: Url,
    /// How long an outage may last before the stream counts as gone.
    wait: Duration,
    /// Set when a reconnect switched to another media playlist (a new timeline).
    reconnected: bool,
    url: Url,
    tx: Sender<Chunk>,
    stop: Arc<AtomicBool>,
    /// Where a fatal error is left for the decoder to report.
    failure: FailureSlot,
    loaded_map: Option<MapKey>,
    /// False until the first media segment went out (a break before it means nothing).
    sent_any: bool,
    edge: LiveEdge,
    /// Stream time at the end of the last segment sent (skipped segments do not count:
    /// the decoder carries time on across a break).
    sent_end: Duration,
}

impl NetworkThread {
    fn run(mut self, first: MediaPlaylist) {
        if let Err(e) = self.play(first) {
            warn!("HLS stream stopped: {e}");
            if let Ok(mut slot) = self.failure.lock() {
                *slot = Some(e);
            }
        }
        // Dropping `tx` ends the decoder's input.
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn play(&mut self, mut media: MediaPlaylist) -> Result<()> {
        let mut next_seq = media.media_sequence + playlist::start_index(&media) as u64;
        let mut loaded_at = Instant::now();
        let mut previous_first: Option<u64> = None;
        let mut last_new_segment = Instant::now();
        let mut in_outage = false;
        loop {
            if self.stopped() {
                return Ok(());
            }
            let first_seq = media.media_sequence;
            let last_seq = first_seq + media.segments.len() as u64;
            // A live window only moves forward; one that moved back (or far below where we
            // are) belongs to a new session of the broadcaster (Livepeer restarts at 0).
            let restarted = std::mem::take(&mut self.reconnected)
                || previous_first.is_some_and(|p| first_seq < p)
                || (next_seq > last_seq + 3 && !media.segments.is_empty());
            previous_first = Some(first_seq);
            let rebase = restarted || next_seq < first_seq;
            if restarted {
                info!("media sequence restarted at {first_seq}: new session, following it");
                next_seq = first_seq + playlist::start_index(&media) as u64;
                if !self.send_break()? {
                    return Ok(());
                }
            } else if next_seq < first_seq {
                warn!(
                    "fell {} segment(s) behind the live window; skipping ahead",
                    first_seq - next_seq
                );
                next_seq = first_seq;
                if !self.send_break()? {
                    return Ok(());
                }
            }
            let unsent: f64 = media
                .segments
                .iter()
                .enumerate()
                .filter(|(i, _)| media.media_sequence + *i as u64 >= next_seq)
                .map(|(_, s)| s.duration as f64)
                .sum();
            self.edge.update(
                self.sent_end + Duration::from_secs_f64(unsent),
                Duration::from_secs(media.target_duration.max(1)),
                rebase,
            );
            let before = next_seq;
            if !self.fetch_new_segments(&media, &mut next_seq)? {
                return Ok(()); // the decoder went away
            }
            if media.end_list {
                info!("playlist ended (ENDLIST)");
                return Ok(());
            }
            let changed = next_seq != before;
            let target = Duration::from_secs(media.target_duration.max(1));
            if changed {
                last_new_segment = Instant::now();
                if std::mem::take(&mut in_outage) {
                    info!("stream resumed");
                }
            } else if last_new_segment.elapsed() > 3 * target {
                // An outage, not an end (that would say ENDLIST): the last frame stays up
                // while we look for the stream again, for up to --wait.
                let silent = last_new_segment.elapsed();
                if !std::mem::replace(&mut in_outage, true) {
                    warn!(
                        "no new segment for {:.0}s: outage; holding the last frame and reconnecting",
                        silent.as_secs_f64()
                    );
                }
                if silent > self.outage_limit(target) {
                    return Err(LucidError::Unplayable {
                        source_name: self.entry.to_string(),
                        reason: format!("no new segment for {:.0}s", silent.as_secs_f64()),
                    });
                }
                if let Some(m) = self.try_reconnect(&media) {
                    media = m;
                    loaded_at = Instant::now();
                    continue;
                }
            }
            let wake = loaded_at + playlist::reload_delay(&media, changed);
            if !self.sleep_until(wake) {
                return Ok(());
            }
            loaded_at = Instant::now();
            media = self.reload(&media)?;
        }
    }

    /// Queues a chunk for the decoder, waiting for room. False once the decoder is gone or
    /// Lucid is stopping, so a full queue never hangs this thread.
    fn send(&self, mut chunk: Chunk) -> bool {
        loop {
            match self.tx.send_timeout(chunk, Duration::from_millis(100)) {
                Ok(()) => return true,
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    if self.stopped() {
                        return false;
                    }
                    chunk = back;
                }
            }
        }
    }

    /// Tells the decoder the timeline breaks here (a no-op before the first segment).
    /// Fails only when the decoder is gone.
    fn send_break(&mut self) -> Result<bool> {
        if !self.sent_any {
            return Ok(true);
        }
        self.sent_any = false;
        // A new demuxer needs the init segment again.
        self.loaded_map = None;
        Ok(self.send(Chunk::Break))
    }

    /// Sends every segment from `next_seq` on. Returns false when the decoder is gone.
    fn fetch_new_segments(&mut self, media: &MediaPlaylist, next_seq: &mut u64) -> Result<bool> {
        let mut map: Option<MapKey> = None;
        for (i, seg) in media.segments.iter().enumerate() {
            // EXT-X-MAP applies to every following segment until the next one.
            if let Some(m) = &seg.map {
                map = Some((
                    playlist::resolve(&self.url, &m.uri)?,
                    m.byte_range.as_ref().map(|r| (r.length, r.offset)),
                ));
            }
            let seq = media.media_sequence + i as u64;
            if seq < *next_seq {
                continue;
            }
            if self.stopped() {
                return Ok(false);
            }
            if seg.discontinuity && !self.send_break()? {
                return Ok(false);
            }
            if map.is_some() && map != self.loaded_map {
                let (uri, range) = map.clone().expect("checked above");
                let range = range.map(|(length, offset)| ByteRange { length, offset });
                let (_, init) = self.http.get_range(
                    &uri,
                    range.as_ref(),
                    RetryPolicy::STARTUP,
                    "init segment",
                )?;
                if !self.send(Chunk::Data(init)) {
                    return Ok(false);
                }
                self.loaded_map = map.clone();
            }
            let uri = playlist::resolve(&self.url, &seg.uri)?;
            match self.http.get_range(
                &uri,
                seg.byte_range.as_ref(),
                RetryPolicy::SEGMENT,
                "segment",
            ) {
                Ok((_, bytes)) => {
                    debug!("segment {seq}: {} bytes", bytes.len());
                    if !self.send(Chunk::Data(bytes)) {
                        return Ok(false);
                    }
                    self.sent_any = true;
                    self.sent_end += Duration::from_secs_f64(seg.duration.max(0.0) as f64);
                }
                Err(e) => {
                    warn!("skipping segment {seq}: {e}");
                    self.edge
                        .shift_back(Duration::from_secs_f64(seg.duration.max(0.0) as f64));
                    // What follows is later than what came before: a new timeline.
                    if !self.send_break()? {
                        return Ok(false);
                    }
                }
            }
            *next_seq = seq + 1;
        }
        Ok(true)
    }

    /// Starts over from the user's URL (the master may now point at another media playlist,
    /// as after a broadcaster reconnect). Returns the new playlist when it is another one,
    /// or the same one restarted.
    fn try_reconnect(&mut self, current: &MediaPlaylist) -> Option<MediaPlaylist> {
        let (_, url, media) = self.http.resolve_media(&self.entry).ok()?;
        let switched = url != self.url || media.media_sequence < current.media_sequence;
        if !switched || media.segments.is_empty() {
            return None;
        }
        info!("reconnected: {url}");
        self.url = url;
        self.reconnected = true;
        Some(media)
    }

    /// Reloads the media playlist, retrying with backoff and, after a few target durations,
    /// reconnecting from the user's URL; a playlist that stays unreachable for --wait (and
    /// at least six target durations) ends the stream with an error.
    fn reload(&mut self, previous: &MediaPlaylist) -> Result<MediaPlaylist> {
        let target = Duration::from_secs(previous.target_duration.max(1));
        let give_up = self.outage_limit(target);
        let started = Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            match self.http.get_media(&self.url).map(|(_, m)| m) {
                Ok(m) => return Ok(m),
                Err(e) if started.elapsed() >= give_up => return Err(e),
                Err(_)
                    if started.elapsed() > 3 * target
                        && let Some(m) = self.try_reconnect(previous) =>
                {
                    return Ok(m);
                }
                Err(e) => {
                    warn!(
                        "reloading playlist: {}; retrying in {:.1}s",
                        short_reason(&e),
                        delay.as_secs_f64()
                    );
                    if !self.sleep_until(Instant::now() + delay) {
                        return Err(e);
                    }
                    delay = (delay * 2).min(Duration::from_secs(4));
                }
            }
        }
    }

    /// How long a live stream may go without new segments (or without a playlist) before
    /// it counts as gone: --wait, and never less than six target durations.
    fn outage_limit(&self, target: Duration) -> Duration {
        self.wait.max(6 * target)
    }

    /// Sleeps in short steps so a stop request is seen quickly. False when stopped.
    fn sleep_until(&self, deadline: Instant) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
    }
}
