//! Playlist logic that needs no network: parsing, rendition choice, URI resolution.

use m3u8_rs::{MasterPlaylist, MediaPlaylist, Playlist, VariantStream};
use url::Url;

use crate::error::{LucidError, Result};

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

/// Parses a fetched body, rejecting anything that is not an HLS playlist with a reason a
/// user can act on (an HTML error page is the usual culprit).
pub fn parse(url: &Url, body: &[u8]) -> Result<Playlist> {
    let text = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    if !text[start..].starts_with(b"#EXTM3U") {
        let preview: String = String::from_utf8_lossy(&text[start..text.len().min(start + 40)])
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let reason = if preview.is_empty() {
            "the body is empty".to_string()
        } else {
            format!("the body starts with {preview:?}, not #EXTM3U")
        };
        return Err(LucidError::NotAPlaylist {
            url: url.to_string(),
            reason,
        });
    }
    m3u8_rs::parse_playlist_res(text).map_err(|e| LucidError::NotAPlaylist {
        url: url.to_string(),
        reason: format!("malformed playlist ({})", first_line(&format!("{e:?}"))),
    })
}

fn first_line(s: &str) -> &str {
    let s = s.lines().next().unwrap_or("");
    &s[..s.len().min(120)]
}

/// Picks the rendition with the most pixels, then the highest bandwidth. The master's order
/// means nothing: Livepeer lists the source first, FFmpeg lists in mapping order.
pub fn select_variant(master: &MasterPlaylist) -> Option<&VariantStream> {
    master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame)
        .max_by_key(|v| {
            let pixels = v.resolution.map(|r| r.width * r.height).unwrap_or(0);
            (pixels, v.bandwidth)
        })
}

/// The chosen rendition of a master playlist fetched from `master_url` (its final URL after
/// redirects, so relative URIs resolve where the server actually answered).
pub fn choose_rendition(master_url: &Url, master: &MasterPlaylist) -> Result<Rendition> {
    let offered = master.variants.iter().filter(|v| !v.is_i_frame).count();
    let variant = select_variant(master).ok_or_else(|| LucidError::NotAPlaylist {
        url: master_url.to_string(),
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
/// URI's own query string (`?tkn=...`), which Livepeer needs on every request.
pub fn resolve(base: &Url, uri: &str) -> Result<Url> {
    base.join(uri.trim()).map_err(|e| LucidError::NotAPlaylist {
        url: base.to_string(),
        reason: format!("bad URI {uri:?} in playlist: {e}"),
    })
}

/// Where to start in a media playlist: live streams start at the newest complete segment
/// (every listed segment is complete without LL-HLS), a finished VOD from the beginning.
pub fn start_index(media: &MediaPlaylist) -> usize {
    if media.end_list {
        0
    } else {
        media.segments.len().saturating_sub(1)
    }
}

/// How long to wait before reloading a live playlist (RFC 8216 6.3.4 / rfc8216bis): the
/// last segment's duration after a change, half the target duration when nothing changed.
pub fn reload_delay(media: &MediaPlaylist, changed: bool) -> std::time::Duration {
    let target = (media.target_duration as f64).max(0.5);
    let secs = if changed {
        media
            .segments
            .last()
            .map(|s| s.duration as f64)
            .filter(|d| *d > 0.0)
            .unwrap_or(target)
    } else {
        target / 2.0
    };
    std::time::Duration::from_secs_f64(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:3\n\
        #EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180\nlow/index.m3u8?tkn=a\n\
        #EXT-X-STREAM-INF:BANDWIDTH=3000000,RESOLUTION=1280x720\nhigh/index.m3u8?tkn=b\n\
        #EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=640x360\nmid/index.m3u8?tkn=c\n";

    #[test]
    fn picks_most_pixels_regardless_of_order_and_keeps_query() {
        let url = Url::parse("http://127.0.0.1:1/hls/x/index.m3u8").unwrap();
        let Playlist::MasterPlaylist(m) = parse(&url, MASTER.as_bytes()).unwrap() else {
            panic!("expected a master playlist");
        };
        let r = choose_rendition(&url, &m).unwrap();
        assert_eq!(r.resolution, Some((1280, 720)));
        assert_eq!(
            r.url.as_str(),
            "http://127.0.0.1:1/hls/x/high/index.m3u8?tkn=b"
        );
        assert_eq!(r.offered, 3);
    }

    #[test]
    fn bandwidth_breaks_ties() {
        let url = Url::parse("http://h/m.m3u8").unwrap();
        let text = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=900,RESOLUTION=640x360\na.m3u8\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=1900,RESOLUTION=640x360\nb.m3u8\n";
        let Playlist::MasterPlaylist(m) = parse(&url, text.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            choose_rendition(&url, &m).unwrap().url.as_str(),
            "http://h/b.m3u8"
        );
    }

    #[test]
    fn rejects_html_and_empty_bodies() {
        let url = Url::parse("http://h/m.m3u8").unwrap();
        let err = parse(&url, b"<html><body>Not here</body></html>").unwrap_err();
        assert!(err.to_string().contains("not #EXTM3U"), "{err}");
        let err = parse(&url, b"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
    }

    #[test]
    fn live_starts_at_newest_segment_vod_at_first() {
        let url = Url::parse("http://h/m.m3u8").unwrap();
        let live = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n\
                    #EXTINF:2.0,\na.ts\n#EXTINF:2.0,\nb.ts\n#EXTINF:1.5,\nc.ts\n";
        let Playlist::MediaPlaylist(m) = parse(&url, live.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(start_index(&m), 2);
        assert_eq!(reload_delay(&m, true).as_secs_f64(), 1.5);
        assert_eq!(reload_delay(&m, false).as_secs_f64(), 1.0);
        let vod = format!("{live}#EXT-X-ENDLIST\n");
        let Playlist::MediaPlaylist(m) = parse(&url, vod.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(start_index(&m), 0);
    }
}
