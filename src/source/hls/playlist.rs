//! Playlist logic that needs no network: parsing, the checks every playlist value goes
//! through, rendition choice, URI resolution, the live window, reload timing and size caps.
//!
//! Playlists come from the network and are data, not trust: every number in one is
//! checked here (bounded, or clamped with a warning) before any arithmetic uses it, so an
//! absurd `EXTINF`, `TARGETDURATION`, media sequence, byte range or resolution gives a
//! clear error instead of a panic or a wrap-around, in debug and in release builds.

use std::time::Duration;

use m3u8_rs::{ByteRange, MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment};
use m3u8_rs::{Playlist, VariantStream};
use tracing::warn;
use url::Url;

use crate::error::HlsError;
use crate::redact::Redacted;

/// Largest playlist body read (a live window of thousands of segments is well under this).
pub const MAX_PLAYLIST_BYTES: u64 = 4 << 20;
/// Largest `EXT-X-TARGETDURATION` accepted, seconds: a day. Live streams use 1-10 s
/// segments, but recording playlists of long sessions are VODs whose target duration is
/// their longest segment (go-livepeer writes `EXT-X-TARGETDURATION:2100` and more); only
/// absurd values are refused.
pub const MAX_TARGET_DURATION: u64 = 86_400;
/// Largest `EXTINF` accepted, seconds (a day, as the target duration).
pub const MAX_SEGMENT_SECS: f64 = 86_400.0;
/// Segment cap when the bandwidth is unknown (a media playlist given directly).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// The segment cap never goes below this (encoders overshoot their declared bandwidth).
pub const MIN_SEGMENT_BYTES: u64 = 16 << 20;
/// ... nor above this, whatever the playlist declares: three segments are queued at once.
pub const MAX_SEGMENT_BYTES: u64 = 128 << 20;
/// Sequence numbers must leave this much room below `u64::MAX` for the window's segments.
const SEQUENCE_HEADROOM: u64 = 1 << 32;

/// The rendition Lucid plays, as the master playlist described it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendition {
    /// The media playlist URL, resolved against the master's final URL (query kept).
    pub url: Url,
    /// Declared width and height, when the master gives RESOLUTION.
    pub resolution: Option<(u64, u64)>,
    /// Declared peak bandwidth in bits per second.
    pub bandwidth: u64,
    /// How many renditions the master offered.
    pub offered: usize,
}

impl std::fmt::Display for Rendition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.resolution {
            Some((w, h)) => write!(f, "{w}x{h}")?,
            None => write!(f, "unknown size")?,
        }
        write!(
            f,
            " @ {:.2} Mb/s (best of {})",
            self.bandwidth as f64 / 1e6,
            self.offered
        )
    }
}

/// Parses a fetched body. Anything that is not an HLS playlist is rejected with a reason a
/// user can act on (an HTML error page is the usual culprit); a short plain-text answer
/// (MistServer's "Stream open failed") or an `#EXT-X-ERROR:` line is the server speaking,
/// reported as [`HlsError::ServerMessage`] with its words.
pub fn parse(url: &Url, body: &[u8]) -> Result<Playlist, HlsError> {
    let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let text = &text[start..];
    if !text.starts_with(b"#EXTM3U") {
        if let Some(message) = server_message(text) {
            return Err(HlsError::ServerMessage {
                url: Redacted::url(url),
                not_live: means_not_live(&message),
                message,
            });
        }
        let preview: String = String::from_utf8_lossy(&text[..text.len().min(40)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let reason = if preview.is_empty() {
            "the body is empty".to_string()
        } else {
            format!("the body starts with {preview:?}, not #EXTM3U")
        };
        return Err(HlsError::NotAPlaylist {
            url: Redacted::url(url),
            reason,
        });
    }
    if let Some(message) = ext_x_error(text) {
        return Err(HlsError::ServerMessage {
            url: Redacted::url(url),
            message,
            not_live: true,
        });
    }
    m3u8_rs::parse_playlist_res(text).map_err(|e| HlsError::NotAPlaylist {
        url: Redacted::url(url),
        reason: format!("malformed playlist ({})", first_line(&format!("{e:?}"))),
    })
}

/// True for a plain-text answer known to mean "this stream is not live yet": MistServer
/// (Livepeer's catalyst) answers "Stream open failed" before the broadcaster connects.
/// Any other text is not waited on.
fn means_not_live(message: &str) -> bool {
    message.to_ascii_lowercase().contains("stream open failed")
}

/// A short, printable, non-markup body: a server's message rather than a page or garbage.
fn server_message(text: &[u8]) -> Option<String> {
    if text.is_empty() || text.len() > 1024 || text.starts_with(b"<") {
        return None;
    }
    let s = std::str::from_utf8(text).ok()?;
    if s.chars().any(|c| c.is_control() && !c.is_whitespace()) {
        return None;
    }
    Some(clean_line(s))
}

/// The text of an `#EXT-X-ERROR` line, if the playlist has one.
fn ext_x_error(text: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(text);
    s.lines().find_map(|l| {
        l.trim()
            .strip_prefix("#EXT-X-ERROR")
            .map(|rest| clean_line(rest.trim_start_matches(':')))
    })
}

fn clean_line(s: &str) -> String {
    let line: String = s
        .trim()
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    crate::redact::redact_text(&line).into_owned()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(120).collect()
}

/// Checks and normalizes every value of a media playlist before Lucid uses it:
/// - `EXT-X-TARGETDURATION` at most [`MAX_TARGET_DURATION`];
/// - `EXT-X-MEDIA-SEQUENCE` leaves room for the window below `u64::MAX`;
/// - `EXTINF` finite and at most [`MAX_SEGMENT_SECS`]; a negative or non-numeric one
///   (old playlists write -1 for "unknown") is taken as the target duration, logged;
/// - `EXT-X-BYTERANGE` without `@offset` continues right after the previous segment's range
///   of the same file (RFC 8216 4.3.2.2) and is filled in here; every range is non-empty,
///   within the segment cap and does not overflow; an `EXT-X-MAP` range defaults to 0.
pub fn check_media(url: &Url, media: &mut MediaPlaylist) -> Result<(), HlsError> {
    let bad = |reason: String| HlsError::BadValue {
        url: Redacted::url(url),
        reason,
    };
    if media.target_duration > MAX_TARGET_DURATION {
        return Err(bad(format!(
            "EXT-X-TARGETDURATION:{} is beyond {MAX_TARGET_DURATION} s",
            media.target_duration
        )));
    }
    let room = u64::MAX - SEQUENCE_HEADROOM;
    if media.media_sequence > room || media.segments.len() as u64 >= SEQUENCE_HEADROOM {
        return Err(bad(format!(
            "EXT-X-MEDIA-SEQUENCE:{} leaves no room for its {} segment(s)",
            media.media_sequence,
            media.segments.len()
        )));
    }
    let fallback = target_secs(media).as_secs_f32();
    let mut clamped = 0;
    let mut previous_range: Option<(&str, u64)> = None;
    for seg in &mut media.segments {
        let d = seg.duration;
        if !d.is_finite() || d < 0.0 {
            seg.duration = fallback;
            clamped += 1;
        } else if f64::from(d) > MAX_SEGMENT_SECS {
            return Err(bad(format!(
                "EXTINF:{d} is beyond {MAX_SEGMENT_SECS} s ({})",
                Redacted::text(&seg.uri)
            )));
        }
        if let Some(map) = &mut seg.map
            && let Some(range) = &mut map.byte_range
        {
            range.offset = Some(range.offset.unwrap_or(0));
            check_range(range).map_err(|why| bad(format!("EXT-X-MAP BYTERANGE {why}")))?;
        }
        match &mut seg.byte_range {
            Some(range) => {
                if range.offset.is_none() {
                    let Some((_, end)) = previous_range.filter(|(uri, _)| *uri == seg.uri) else {
                        return Err(bad(format!(
                            "EXT-X-BYTERANGE:{} has no offset and does not follow a range of \
                             the same file",
                            range.length
                        )));
                    };
                    range.offset = Some(end);
                }
                let end = check_range(range).map_err(|why| bad(format!("BYTERANGE {why}")))?;
                previous_range = Some((seg.uri.as_str(), end));
            }
            None => previous_range = None,
        }
    }
    if clamped > 0 {
        warn!(
            "{}: {clamped} EXTINF value(s) were not durations; taken as {fallback} s",
            Redacted::url(url)
        );
    }
    Ok(())
}

/// A range with its offset filled in: non-empty, within the segment cap, no overflow.
/// Returns the byte after its end.
fn check_range(range: &ByteRange) -> Result<u64, String> {
    let offset = range.offset.unwrap_or(0);
    if range.length == 0 || range.length > MAX_SEGMENT_BYTES {
        return Err(format!(
            "length {} is outside 1..={MAX_SEGMENT_BYTES}",
            range.length
        ));
    }
    offset.checked_add(range.length).ok_or_else(|| {
        format!(
            "{}@{offset} runs past the largest file offset",
            range.length
        )
    })
}

/// The target duration as a duration (at least one second: 0 means "not given").
pub fn target_secs(media: &MediaPlaylist) -> Duration {
    Duration::from_secs(media.target_duration.clamp(1, MAX_TARGET_DURATION))
}

/// A segment's duration, for arithmetic (checked playlists hold finite values; this stays
/// safe on unchecked ones too).
pub fn segment_secs(seg: &MediaSegment) -> Duration {
    let d = f64::from(seg.duration);
    if d.is_finite() && d > 0.0 {
        Duration::from_secs_f64(d.min(MAX_SEGMENT_SECS))
    } else {
        Duration::ZERO
    }
}

/// True for a finished presentation: ENDLIST, or `EXT-X-PLAYLIST-TYPE:VOD` (a VOD playlist
/// never changes, with or without ENDLIST).
pub fn is_finite(media: &MediaPlaylist) -> bool {
    media.end_list || media.playlist_type == Some(MediaPlaylistType::Vod)
}

/// `EXT-X-GAP` (rfc8216bis): the segment is missing on purpose and must not be fetched.
pub fn is_gap(seg: &MediaSegment) -> bool {
    seg.unknown_tags.iter().any(|t| t.tag == "X-GAP")
}

/// The most bytes Lucid reads for one segment: four times what its declared bandwidth
/// and duration allow, within [`MIN_SEGMENT_BYTES`]..=[`MAX_SEGMENT_BYTES`].
pub fn segment_limit(bandwidth: Option<u64>, duration: Duration) -> u64 {
    match bandwidth {
        Some(bps) if bps > 0 => {
            let declared = (bps as f64 / 8.0) * duration.as_secs_f64().max(1.0) * 4.0;
            (declared.min(MAX_SEGMENT_BYTES as f64) as u64)
                .clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
        }
        _ => DEFAULT_SEGMENT_BYTES,
    }
}

/// Picks the rendition with the most pixels, then the highest bandwidth. The master's order
/// means nothing: Livepeer lists the source first, FFmpeg lists in mapping order.
pub fn select_variant(master: &MasterPlaylist) -> Option<&VariantStream> {
    master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .max_by_key(|v| {
            // Saturating: a RESOLUTION of 2^40 x 2^40 is nonsense, not a reason to wrap.
            let pixels = v
                .resolution
                .map(|r| r.width.saturating_mul(r.height))
                .unwrap_or(0);
            (pixels, v.bandwidth)
        })
}

/// The chosen rendition of a master playlist fetched from `master_url` (its final URL after
/// redirects, so relative URIs resolve where the server actually answered).
pub fn choose_rendition(master_url: &Url, master: &MasterPlaylist) -> Result<Rendition, HlsError> {
    let offered = master.variants.iter().filter(|v| !v.is_i_frame).count();
    let variant = select_variant(master).ok_or_else(|| HlsError::NotAPlaylist {
        url: Redacted::url(master_url),
        reason: "the master playlist lists no video renditions".to_string(),
    })?;
    Ok(Rendition {
        url: resolve(master_url, &variant.uri)?,
        resolution: variant.resolution.map(|r| (r.width, r.height)),
        bandwidth: variant.bandwidth,
        offered,
    })
}

/// Resolves a playlist URI against the playlist's own (final) URL. `Url::join` keeps the
/// URI's own query string (`?tkn=...`), which Livepeer needs on every request. Only http(s)
/// results are accepted: a playlist must not point Lucid at `file:` or other schemes.
pub fn resolve(base: &Url, uri: &str) -> Result<Url, HlsError> {
    let bad = |reason: String| HlsError::NotAPlaylist {
        url: Redacted::url(base),
        reason,
    };
    let url = base.join(uri.trim()).map_err(|e| {
        bad(format!(
            "bad URI {:?} in playlist: {e}",
            Redacted::text(uri)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "URI {} in playlist is not http(s)",
            Redacted::url(&url)
        )));
    }
    Ok(url)
}

/// Where to start in a media playlist: live streams start at the newest complete segment
/// (every listed segment is complete without LL-HLS), a finished VOD from the beginning.
pub fn start_index(media: &MediaPlaylist) -> usize {
    if is_finite(media) {
        0
    } else {
        media.segments.len().saturating_sub(1)
    }
}

/// How long to wait before reloading a live playlist (RFC 8216 6.3.4 / rfc8216bis): the
/// last segment's duration after a change, half the target duration when nothing changed.
pub fn reload_delay(media: &MediaPlaylist, changed: bool) -> Duration {
    let target = target_secs(media);
    if changed {
        media
            .segments
            .last()
            .map(segment_secs)
            .filter(|d| !d.is_zero())
            .unwrap_or(target)
            .min(target * 2)
    } else {
        target / 2
    }
}

/// How a reloaded live window relates to where playback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStep {
    /// The window moved on as expected.
    Continues,
    /// A new broadcaster session (the sequence went back, or jumped far below where we
    /// are): playback follows it from its newest segment.
    Restarted,
    /// Playback fell this many segments behind the window and skips ahead.
    Skipped(u64),
}

/// Which segment of a live (or finite) playlist is next, across reloads. Works on checked
/// playlists ([`check_media`]), where sequence arithmetic cannot overflow; saturating
/// anyway, so an unchecked one cannot panic either.
#[derive(Debug, Clone)]
pub struct LiveWindow {
    next_seq: u64,
    previous_first: Option<u64>,
}

impl LiveWindow {
    /// Starts at [`start_index`] of the first playlist.
    pub fn new(media: &MediaPlaylist) -> LiveWindow {
        LiveWindow {
            next_seq: media
                .media_sequence
                .saturating_add(start_index(media) as u64),
            previous_first: None,
        }
    }

    /// The next sequence number to send.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Looks at a (re)loaded playlist. `reconnected`: it came from starting over at the
    /// user's URL, so it is a new timeline whatever its numbers say.
    pub fn observe(&mut self, media: &MediaPlaylist, reconnected: bool) -> WindowStep {
        let first = media.media_sequence;
        let end = first.saturating_add(media.segments.len() as u64);
        // A live window only moves forward; one that moved back (or far below where we
        // are) belongs to a new session of the broadcaster (Livepeer restarts at 0).
        let restarted = reconnected
            || self.previous_first.is_some_and(|p| first < p)
            || (self.next_seq > end.saturating_add(3) && !media.segments.is_empty());
        self.previous_first = Some(first);
        if restarted {
            self.next_seq = first.saturating_add(start_index(media) as u64);
            WindowStep::Restarted
        } else if self.next_seq < first {
            let behind = first - self.next_seq;
            self.next_seq = first;
            WindowStep::Skipped(behind)
        } else {
            WindowStep::Continues
        }
    }

    /// The segments not sent yet, with their sequence numbers.
    pub fn pending<'a>(
        &self,
        media: &'a MediaPlaylist,
    ) -> impl Iterator<Item = (u64, usize, &'a MediaSegment)> + 'a {
        let next = self.next_seq;
        let first = media.media_sequence;
        media
            .segments
            .iter()
            .enumerate()
            .map(move |(i, s)| (first.saturating_add(i as u64), i, s))
            .filter(move |(seq, _, _)| *seq >= next)
    }

    /// Stream time still to come from the listed segments not sent yet.
    pub fn unsent(&self, media: &MediaPlaylist) -> Duration {
        self.pending(media).map(|(_, _, s)| segment_secs(s)).sum()
    }

    /// Marks everything up to and including `seq` as sent (or skipped).
    pub fn advance_past(&mut self, seq: u64) {
        self.next_seq = self.next_seq.max(seq.saturating_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use m3u8_rs::Playlist;

    const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:3\n\
        #EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180\nlow/index.m3u8?tkn=a\n\
        #EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720\nhigh/index.m3u8?tkn=b\n\
        #EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=640x360\nmid/index.m3u8?tkn=c\n";

    fn url() -> Url {
        Url::parse("http://127.0.0.1:1/hls/x/index.m3u8").unwrap()
    }

    fn media(text: &str) -> Result<MediaPlaylist, HlsError> {
        match parse(&url(), text.as_bytes())? {
            Playlist::MediaPlaylist(mut m) => check_media(&url(), &mut m).map(|()| m),
            Playlist::MasterPlaylist(_) => panic!("expected a media playlist"),
        }
    }

    fn master(text: &str) -> MasterPlaylist {
        match parse(&url(), text.as_bytes()).unwrap() {
            Playlist::MasterPlaylist(m) => m,
            Playlist::MediaPlaylist(_) => panic!("expected a master playlist"),
        }
    }

    #[test]
    fn picks_most_pixels_regardless_of_order_and_keeps_query() {
        let r = choose_rendition(&url(), &master(MASTER)).unwrap();
        assert_eq!(r.resolution, Some((1280, 720)));
        assert_eq!(
            r.url.as_str(),
            "http://127.0.0.1:1/hls/x/high/index.m3u8?tkn=b"
        );
        assert_eq!(r.offered, 3);
    }

    #[test]
    fn bandwidth_breaks_ties() {
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900,RESOLUTION=640x360\na.m3u8\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=1900,RESOLUTION=640x360\nb.m3u8\n";
        assert_eq!(
            choose_rendition(&url(), &master(text))
                .unwrap()
                .url
                .as_str(),
            "http://127.0.0.1:1/hls/x/b.m3u8"
        );
    }

    #[test]
    fn rejects_html_and_empty_bodies_and_reports_server_messages() {
        let err = parse(&url(), b"<html><body>Not here</body></html>").unwrap_err();
        assert!(matches!(err, HlsError::NotAPlaylist { .. }), "{err}");
        assert!(!err.is_transient());
        let err = parse(&url(), b"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = parse(&url(), b"Stream open failed\r\n").unwrap_err();
        assert!(
            matches!(&err, HlsError::ServerMessage { message, .. } if message == "Stream open failed"),
            "{err:?}"
        );
        assert!(err.is_transient());
        let err = parse(&url(), b"\x00\x01\x02garbage").unwrap_err();
        assert!(matches!(err, HlsError::NotAPlaylist { .. }), "{err}");
        // #EXT-X-ERROR inside an otherwise valid playlist: the server's own words.
        let err = parse(
            &url(),
            b"#EXTM3U\r\n#EXT-X-ERROR:Stream is offline\r\n#EXT-X-TARGETDURATION:2\r\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("Stream is offline"), "{err}");
    }

    #[test]
    fn live_starts_at_newest_segment_vod_at_first() {
        let live = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
                    #EXTINF:2.0,\na.ts\n#EXTINF:2.0,\nb.ts\n#EXTINF:1.5,\nc.ts\n";
        let m = media(live).unwrap();
        assert_eq!(start_index(&m), 2);
        assert_eq!(reload_delay(&m, true).as_secs_f64(), 1.5);
        assert_eq!(reload_delay(&m, false).as_secs_f64(), 1.0);
        let m = media(&format!("{live}#EXT-X-ENDLIST\n")).unwrap();
        assert_eq!(start_index(&m), 0);
        // PLAYLIST-TYPE:VOD is finished even without ENDLIST.
        let vod = live.replace(
            "#EXT-X-MEDIA-SEQUENCE:7\n",
            "#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-PLAYLIST-TYPE:VOD\n",
        );
        let m = media(&vod).unwrap();
        assert!(is_finite(&m));
        assert_eq!(start_index(&m), 0);
        let event = vod.replace("TYPE:VOD", "TYPE:EVENT");
        let m = media(&event).unwrap();
        assert!(!is_finite(&m), "an EVENT playlist is live until ENDLIST");
        assert_eq!(start_index(&m), 2);
    }

    #[test]
    fn absurd_values_are_errors_or_clamped_never_panics() {
        let huge_extinf = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:99999.5,\na.ts\n";
        assert!(matches!(media(huge_extinf), Err(HlsError::BadValue { .. })));
        let huge_target = "#EXTM3U\n#EXT-X-TARGETDURATION:18446744073709551615\n#EXTINF:2,\na.ts\n";
        let e = media(huge_target).unwrap_err();
        assert!(e.to_string().contains("TARGETDURATION"), "{e}");
        let seq = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n\
                   #EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        let e = media(seq).unwrap_err();
        assert!(e.to_string().contains("MEDIA-SEQUENCE"), "{e}");
        let range = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n\
                     #EXTINF:2,\n#EXT-X-BYTERANGE:1000@18446744073709551000\na.ts\n";
        let e = media(range).unwrap_err();
        assert!(e.to_string().contains("BYTERANGE"), "{e}");
        // A duration too long for an f32 (infinite once parsed) becomes the target duration.
        let odd = format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:1{},\na.ts\n#EXTINF:2,\nb.ts\n",
            "0".repeat(40)
        );
        let m = media(&odd).unwrap();
        assert_eq!(m.segments[0].duration, 4.0);
        assert_eq!(m.segments[1].duration, 2.0);
        // A RESOLUTION whose product overflows u64 still picks a variant.
        let text = "#EXTM3U\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=18446744073709551615x18446744073709551615\na.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2,RESOLUTION=640x360\nb.m3u8\n";
        assert!(choose_rendition(&url(), &master(text)).is_ok());
    }

    #[test]
    fn byterange_without_offset_continues_the_previous_range() {
        // RFC 8216 4.3.2.2: "If o is not present, the sub-range begins at the next byte
        // following the sub-range of the previous Media Segment."
        let text = "#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-TARGETDURATION:1\n\
                    #EXTINF:1,\n#EXT-X-BYTERANGE:1000@500\nall.ts\n\
                    #EXTINF:1,\n#EXT-X-BYTERANGE:2000\nall.ts\n\
                    #EXTINF:1,\n#EXT-X-BYTERANGE:300\nall.ts\n";
        let m = media(text).unwrap();
        let offsets: Vec<_> = m
            .segments
            .iter()
            .map(|s| s.byte_range.as_ref().unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![Some(500), Some(1500), Some(3500)]);
        let orphan = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n#EXT-X-BYTERANGE:10\na.ts\n";
        assert!(matches!(media(orphan), Err(HlsError::BadValue { .. })));
        let other_file = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n\
                          #EXTINF:1,\n#EXT-X-BYTERANGE:10@0\na.ts\n\
                          #EXTINF:1,\n#EXT-X-BYTERANGE:10\nb.ts\n";
        assert!(matches!(media(other_file), Err(HlsError::BadValue { .. })));
    }

    #[test]
    fn gap_segments_are_marked() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n\
                    #EXT-X-GAP\n#EXTINF:2,\nb.ts\n#EXTINF:2,\nc.ts\n";
        let m = media(text).unwrap();
        let gaps: Vec<_> = m.segments.iter().map(is_gap).collect();
        assert_eq!(gaps, vec![false, true, false]);
    }

    #[test]
    fn playlists_may_only_point_at_http() {
        let base = url();
        assert!(resolve(&base, "file:///etc/passwd").is_err());
        assert!(resolve(&base, "seg.ts?jwt=x").is_ok());
    }

    #[test]
    fn segment_cap_follows_bandwidth_within_bounds() {
        let two = Duration::from_secs(2);
        assert_eq!(segment_limit(None, two), DEFAULT_SEGMENT_BYTES);
        assert_eq!(segment_limit(Some(1_000_000), two), MIN_SEGMENT_BYTES);
        assert_eq!(
            segment_limit(Some(100_000_000), two),
            100_000_000 / 8 * 2 * 4
        );
        assert_eq!(segment_limit(Some(u64::MAX), two), MAX_SEGMENT_BYTES);
    }

    #[test]
    fn live_window_follows_restarts_and_skips_ahead() {
        let list = |seq: u64, n: usize| {
            let mut t = format!("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{seq}\n");
            for i in 0..n {
                t.push_str(&format!("#EXTINF:1,\ns{}.ts\n", seq + i as u64));
            }
            media(&t).unwrap()
        };
        let first = list(10, 3);
        let mut w = LiveWindow::new(&first);
        assert_eq!(w.next_seq(), 12);
        assert_eq!(w.observe(&first, false), WindowStep::Continues);
        w.advance_past(12);
        assert_eq!(w.observe(&list(20, 3), false), WindowStep::Skipped(7));
        assert_eq!(w.next_seq(), 20);
        assert_eq!(w.observe(&list(0, 2), false), WindowStep::Restarted);
        assert_eq!(w.next_seq(), 1);
        assert_eq!(w.unsent(&list(0, 2)), Duration::from_secs(1));
    }

    /// RFC 8216 section 8's examples, as printed there.
    #[test]
    fn rfc8216_section_8_examples() {
        let simple = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-VERSION:3\n\
            #EXTINF:9.009,\nhttp://media.example.com/first.ts\n\
            #EXTINF:9.009,\nhttp://media.example.com/second.ts\n\
            #EXTINF:3.003,\nhttp://media.example.com/third.ts\n#EXT-X-ENDLIST\n";
        let m = media(simple).unwrap();
        assert!(is_finite(&m) && m.segments.len() == 3);
        let live = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:8\n\
            #EXT-X-MEDIA-SEQUENCE:2680\n\n\
            #EXTINF:7.975,\nhttps://priv.example.com/fileSequence2680.ts\n\
            #EXTINF:7.941,\nhttps://priv.example.com/fileSequence2681.ts\n\
            #EXTINF:7.975,\nhttps://priv.example.com/fileSequence2682.ts\n";
        let m = media(live).unwrap();
        assert_eq!(LiveWindow::new(&m).next_seq(), 2682);
        let master_text = "#EXTM3U\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000\nhttp://example.com/low.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2560000,AVERAGE-BANDWIDTH=2000000\nhttp://example.com/mid.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=7680000,AVERAGE-BANDWIDTH=6000000\nhttp://example.com/hi.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=65000,CODECS=\"mp4a.40.5\"\nhttp://example.com/audio-only.m3u8\n";
        let r = choose_rendition(&url(), &master(master_text)).unwrap();
        assert_eq!(r.url.as_str(), "http://example.com/hi.m3u8");
        let iframes = "#EXTM3U\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1280000\nlow/audio-video.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"low/iframe.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2560000\nmid/audio-video.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=150000,URI=\"mid/iframe.m3u8\"\n";
        let r = choose_rendition(&url(), &master(iframes)).unwrap();
        assert_eq!(
            r.url.as_str(),
            "http://127.0.0.1:1/hls/x/mid/audio-video.m3u8"
        );
        assert_eq!(r.offered, 2, "I-frame playlists are not renditions");
        let audio_groups = "#EXTM3U\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"English\",DEFAULT=YES,AUTOSELECT=YES,LANGUAGE=\"en\",URI=\"main/english-audio.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1280000,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aac\"\nlow/video-only.m3u8\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2560000,CODECS=\"avc1.4d401e,mp4a.40.2\",AUDIO=\"aac\"\nmid/video-only.m3u8\n";
        let r = choose_rendition(&url(), &master(audio_groups)).unwrap();
        assert_eq!(
            r.url.as_str(),
            "http://127.0.0.1:1/hls/x/mid/video-only.m3u8"
        );
    }

    /// How MistServer (Livepeer's media server) writes a live playlist: CRLF line endings,
    /// `?mTrack=&iMsn=` on every URI, a PROGRAM-DATE-TIME on every segment; and catalyst's
    /// `?jwt=` on every URI.
    #[test]
    fn mistserver_and_catalyst_playlists() {
        let mut text = String::from(
            "#EXTM3U\r\n#EXT-X-VERSION:3\r\n#EXT-X-TARGETDURATION:3\r\n#EXT-X-MEDIA-SEQUENCE:411\r\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:0\r\n",
        );
        for i in 411..416 {
            text.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:2026-11-25T18:00:{:02}.000Z\r\n#EXTINF:2.000,\r\n\
                 {i}.ts?mTrack=0&iMsn={i}&jwt=eyJhbGciOi.secret.sig\r\n",
                i - 400
            ));
        }
        let m = media(&text).unwrap();
        assert_eq!(m.segments.len(), 5);
        let w = LiveWindow::new(&m);
        assert_eq!(w.next_seq(), 415);
        let (_, _, seg) = w.pending(&m).next().unwrap();
        let u = resolve(&url(), &seg.uri).unwrap();
        assert_eq!(
            u.query(),
            Some("mTrack=0&iMsn=415&jwt=eyJhbGciOi.secret.sig")
        );
        assert!(seg.program_date_time.is_some());
        assert!(!Redacted::url(&u).as_str().contains("secret"));
    }
}

/// Generated and mutated playlists through parsing, checking, variant choice and the live
/// window: nothing may panic, whatever the numbers or bytes.
#[cfg(test)]
mod properties {
    use super::*;
    use m3u8_rs::Playlist;
    use proptest::prelude::*;

    /// Numbers as playlists carry them, extremes included.
    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..10).prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            Just(u64::MAX.to_string()),
            Just("18446744073709551616".to_string()),
            Just("-1".to_string()),
        ]
    }

    fn float() -> impl Strategy<Value = String> {
        prop_oneof![
            (0.0f32..10.0).prop_map(|f| format!("{f:.3}")),
            any::<f32>().prop_map(|f| f.to_string()),
            Just("1e39".to_string()),
            Just("NaN".to_string()),
            Just("inf".to_string()),
            Just("-0.5".to_string()),
        ]
    }

    fn segment() -> impl Strategy<Value = String> {
        (
            float(),
            prop::option::of((number(), prop::option::of(number()))),
            any::<bool>(),
            any::<bool>(),
            prop::option::of(number()),
            0u8..3,
        )
            .prop_map(|(d, range, disc, gap, map_off, uri)| {
                let mut s = String::new();
                if disc {
                    s.push_str("#EXT-X-DISCONTINUITY\n");
                }
                if gap {
                    s.push_str("#EXT-X-GAP\n");
                }
                if let Some(off) = map_off {
                    s.push_str(&format!(
                        "#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"100@{off}\"\n"
                    ));
                }
                s.push_str(&format!("#EXTINF:{d},\n"));
                if let Some((len, off)) = range {
                    match off {
                        Some(o) => s.push_str(&format!("#EXT-X-BYTERANGE:{len}@{o}\n")),
                        None => s.push_str(&format!("#EXT-X-BYTERANGE:{len}\n")),
                    }
                }
                s.push_str(&format!("seg{uri}.ts?tkn=t\n"));
                s
            })
    }

    fn media_text() -> impl Strategy<Value = String> {
        (
            number(),
            number(),
            prop::option::of(prop_oneof![Just("VOD"), Just("EVENT"), Just("X")]),
            prop::collection::vec(segment(), 0..12),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(target, seq, kind, segs, end, crlf)| {
                let mut t = format!(
                    "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n\
                     #EXT-X-MEDIA-SEQUENCE:{seq}\n"
                );
                if let Some(k) = kind {
                    t.push_str(&format!("#EXT-X-PLAYLIST-TYPE:{k}\n"));
                }
                t.extend(segs);
                if end {
                    t.push_str("#EXT-X-ENDLIST\n");
                }
                if crlf { t.replace('\n', "\r\n") } else { t }
            })
    }

    fn master_text() -> impl Strategy<Value = String> {
        prop::collection::vec((number(), number(), number(), any::<bool>()), 0..6).prop_map(
            |variants| {
                let mut t = String::from("#EXTM3U\n");
                for (i, (bw, w, h, iframe)) in variants.into_iter().enumerate() {
                    if iframe {
                        t.push_str(&format!(
                            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={bw},URI=\"i{i}.m3u8\"\n"
                        ));
                    } else {
                        t.push_str(&format!(
                            "#EXT-X-STREAM-INF:BANDWIDTH={bw},RESOLUTION={w}x{h}\nv{i}.m3u8\n"
                        ));
                    }
                }
                t
            },
        )
    }

    /// A byte-level edit: overwrite, insert or delete at a position.
    fn mutate(mut bytes: Vec<u8>, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
        for (pos, byte, op) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let at = pos % bytes.len();
            match op % 3 {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        bytes
    }

    /// Everything Lucid does with a playlist body before it touches the network again.
    fn exercise(body: &[u8], reloaded: &[u8]) {
        let url = Url::parse("http://127.0.0.1:1/live/index.m3u8?jwt=x").unwrap();
        match parse(&url, body) {
            Ok(Playlist::MasterPlaylist(m)) => {
                if let Ok(r) = choose_rendition(&url, &m) {
                    let _ = r.to_string();
                    let _ = segment_limit(Some(r.bandwidth), Duration::from_secs(2));
                }
            }
            Ok(Playlist::MediaPlaylist(mut m)) => {
                if check_media(&url, &mut m).is_err() {
                    return;
                }
                let mut window = LiveWindow::new(&m);
                let _ = window.observe(&m, false);
                let _ = window.unsent(&m);
                let sent: Vec<u64> = window
                    .pending(&m)
                    .map(|(seq, _, s)| {
                        let _ = (is_gap(s), segment_secs(s), resolve(&url, &s.uri));
                        seq
                    })
                    .collect();
                for seq in sent {
                    window.advance_past(seq);
                }
                let _ = (
                    reload_delay(&m, true),
                    reload_delay(&m, false),
                    start_index(&m),
                );
                if let Ok(Playlist::MediaPlaylist(mut next)) = parse(&url, reloaded)
                    && check_media(&url, &mut next).is_ok()
                {
                    let _ = window.observe(&next, false);
                    let _ = window.unsent(&next);
                    let _ = window.observe(&next, true);
                }
            }
            Err(e) => {
                let _ = (e.to_string(), e.is_transient());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn generated_media_playlists_never_panic(a in media_text(), b in media_text()) {
            exercise(a.as_bytes(), b.as_bytes());
        }

        #[test]
        fn generated_master_playlists_never_panic(a in master_text()) {
            exercise(a.as_bytes(), b"");
        }

        #[test]
        fn mutated_playlists_never_panic(
            a in media_text(),
            b in media_text(),
            edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..16),
        ) {
            let a = mutate(a.into_bytes(), edits.clone());
            let b = mutate(b.into_bytes(), edits);
            exercise(&a, &b);
        }
    }
}
