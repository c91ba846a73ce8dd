//! Sources: what `--url` names, resolved into something the decode thread can read.
//!
//! HLS goes through Lucid's own client ([`hls::HlsSource`]) because FFmpeg's HLS demuxer
//! starts three segments behind live and ends the stream on the first failed reload.
//! Everything else is handed to FFmpeg as is.

pub mod hls;

use std::path::Path;

use url::Url;

use crate::redact::Redacted;

/// Where Livepeer serves HLS for a playback id.
pub const LIVEPEER_HLS_BASE: &str = "https://livepeercdn.studio/hls";

/// A resolved `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// No `--url`: the built-in moving test pattern.
    TestPattern,
    /// An HLS playlist (master or media) over http(s), read by Lucid's HLS client.
    Hls(Url),
    /// Anything else FFmpeg opens by itself: a file path, `rtmp://`, `srt://`, ...
    Ffmpeg(String),
}

impl SourceSpec {
    /// Resolves the user's `--url`. A bare Livepeer playback id and an `lvpr.tv` player page
    /// both become the livepeercdn HLS URL, since that is what they stand for.
    pub fn resolve(url: Option<&str>) -> SourceSpec {
        let Some(raw) = url.map(str::trim) else {
            return SourceSpec::TestPattern;
        };
        if Path::new(raw).exists() {
            return SourceSpec::Ffmpeg(raw.to_string());
        }
        if let Ok(parsed) = Url::parse(raw) {
            match parsed.scheme() {
                "http" | "https" => {
                    if let Some(id) = lvpr_page_id(&parsed) {
                        return SourceSpec::Hls(livepeer_hls_url(&id));
                    }
                    return SourceSpec::Hls(parsed);
                }
                _ => return SourceSpec::Ffmpeg(raw.to_string()),
            }
        }
        if is_playback_id(raw) {
            return SourceSpec::Hls(livepeer_hls_url(raw));
        }
        SourceSpec::Ffmpeg(raw.to_string())
    }

    /// A short name for logs, the status line, stats and the window title, with any
    /// credentials in it masked.
    pub fn display_name(&self) -> Redacted {
        match self {
            SourceSpec::TestPattern => Redacted::text("test pattern"),
            SourceSpec::Hls(url) => Redacted::url(url),
            SourceSpec::Ffmpeg(s) => Redacted::text(s),
        }
    }
}

/// The livepeercdn HLS master playlist for a playback id.
pub fn livepeer_hls_url(playback_id: &str) -> Url {
    Url::parse(&format!("{LIVEPEER_HLS_BASE}/{playback_id}/index.m3u8"))
        .expect("playback ids are checked to be URL-safe")
}

/// `https://lvpr.tv/?v=<id>` (Livepeer's web player) names a stream by its playback id.
fn lvpr_page_id(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    if host != "lvpr.tv" && !host.ends_with(".lvpr.tv") {
        return None;
    }
    url.query_pairs()
        .find(|(k, _)| k == "v")
        .map(|(_, v)| v.into_owned())
        .filter(|v| is_playback_id(v))
}

/// Livepeer playback ids are short alphanumeric tokens; anything with a dot or slash is a
/// path, which keeps `clip.mp4` from being mistaken for an id.
fn is_playback_id(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_form_of_url() {
        assert_eq!(SourceSpec::resolve(None), SourceSpec::TestPattern);
        assert_eq!(
            SourceSpec::resolve(Some("abcd1234efgh5678")),
            SourceSpec::Hls(
                Url::parse("https://livepeercdn.studio/hls/abcd1234efgh5678/index.m3u8").unwrap()
            )
        );
        assert_eq!(
            SourceSpec::resolve(Some("https://lvpr.tv/?v=abcd1234efgh5678")),
            SourceSpec::Hls(
                Url::parse("https://livepeercdn.studio/hls/abcd1234efgh5678/index.m3u8").unwrap()
            )
        );
        let tokened = "https://cdn.example/hls/x/index.m3u8?tkn=abc";
        assert_eq!(
            SourceSpec::resolve(Some(tokened)),
            SourceSpec::Hls(Url::parse(tokened).unwrap())
        );
        assert_eq!(
            SourceSpec::resolve(Some("rtmp://127.0.0.1/live/x")),
            SourceSpec::Ffmpeg("rtmp://127.0.0.1/live/x".into())
        );
        assert_eq!(
            SourceSpec::resolve(Some("missing-clip.mp4")),
            SourceSpec::Ffmpeg("missing-clip.mp4".into())
        );
    }
}
