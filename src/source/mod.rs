//! Sources: what `--url` names, resolved into something the decode thread can read.
//!
//! HLS goes through Lucid's own client ([`hls::HlsSource`]) because FFmpeg's HLS demuxer
//! starts three segments behind live and ends the stream on the first failed reload.
//! WebRTC (WHEP) goes through [`whep::WhepSource`]. A Livepeer playback id asks playback
//! info ([`livepeer`]) and plays WebRTC first, HLS as the fallback. Everything else is
//! handed to FFmpeg as is.

pub mod hls;
pub mod livepeer;
pub mod whep;

use std::path::Path;
use std::time::Duration;

use tracing::{info, warn};
use url::Url;

use crate::error::{LucidError, Result};
use crate::lifecycle::Lifecycle;
use crate::redact::Redacted;
use hls::{HlsSource, HlsStream};
use whep::{WhepError, WhepSource, WhepStream};

/// Where Livepeer serves HLS for a playback id.
pub const LIVEPEER_HLS_BASE: &str = "https://livepeercdn.studio/hls";
/// Where Livepeer serves WHEP for a playback id.
pub const LIVEPEER_WEBRTC_BASE: &str = "https://livepeercdn.studio/webrtc";

/// Which protocol plays a network source (`--protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// WebRTC where the source has it, HLS otherwise or when WebRTC is refused.
    #[default]
    Auto,
    /// WebRTC only: a refusal is an error.
    WebRtc,
    /// HLS only.
    Hls,
}

/// What opening a network source needs to know.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    /// `--protocol`.
    pub protocol: Protocol,
    /// `--livepeer-api`: where playback info is asked.
    pub livepeer_api: Url,
    /// How long to wait for a stream that is not live yet, and how long an outage may last.
    pub wait: Duration,
    /// `--ice-server`: STUN servers asked for WebRTC's server-reflexive candidates.
    pub ice_servers: Vec<whep::stun::StunServer>,
}

/// A resolved `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// No `--url`: the built-in moving test pattern.
    TestPattern,
    /// An HLS playlist (master or media) over http(s), read by Lucid's HLS client.
    Hls(Url),
    /// A WHEP endpoint. `fallback` is the HLS URL of the same stream, when it is known
    /// (Livepeer's `/webrtc/<id>` has one at `/hls/<id>/index.m3u8`) and `--protocol auto`.
    Whep {
        /// The endpoint.
        url: Url,
        /// HLS to play if WebRTC is refused.
        fallback: Option<Url>,
    },
    /// A Livepeer playback id: playback info decides (WebRTC first, then HLS).
    Playback {
        /// The id.
        id: String,
        /// False with `--protocol webrtc`: no HLS fallback.
        fallback: bool,
    },
    /// Anything else FFmpeg opens by itself: a file path, `rtmp://`, `srt://`, ...
    Ffmpeg(String),
    /// `canvas:WxH[@FPS]`: black frames at that size and rate, for a generator (an ISF
    /// source: `isf:NAME` plays as this canvas with the generator first in its chain).
    Canvas {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Frames a second.
        rate: u32,
    },
}

impl SourceSpec {
    /// Resolves the user's `--url` under `--protocol`. A bare Livepeer playback id and an
    /// `lvpr.tv` player page both name a playback id. A URL that says its protocol (a WHEP
    /// path, an `.m3u8`) and a `--protocol` that says another is a usage error.
    pub fn resolve(url: Option<&str>, protocol: Protocol) -> Result<SourceSpec> {
        let Some(raw) = url.map(str::trim) else {
            return Ok(SourceSpec::TestPattern);
        };
        if let Some(canvas) = raw.strip_prefix("canvas:") {
            return canvas_spec(canvas).ok_or_else(|| {
                LucidError::Usage(format!(
                    "{raw}: a canvas is canvas:WIDTHxHEIGHT[@FPS] (16 to 8192 pixels, 1 to 240 fps)"
                ))
            });
        }
        let conflict = |what: &str| {
            LucidError::Usage(format!(
                "--url is {what}, which --protocol {} cannot play",
                match protocol {
                    Protocol::Hls => "hls",
                    _ => "webrtc",
                }
            ))
        };
        if Path::new(raw).exists() {
            if protocol != Protocol::Auto {
                return Err(conflict("a file"));
            }
            return Ok(SourceSpec::Ffmpeg(raw.to_string()));
        }
        let id = match Url::parse(raw) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                match lvpr_page_id(&parsed) {
                    Some(id) => id,
                    None => return Self::resolve_http(parsed, protocol, conflict),
                }
            }
            Ok(_) if protocol != Protocol::Auto => return Err(conflict("not an http(s) URL")),
            Ok(_) => return Ok(SourceSpec::Ffmpeg(raw.to_string())),
            Err(_) if is_playback_id(raw) => raw.to_string(),
            Err(_) if protocol != Protocol::Auto => {
                return Err(conflict("neither a URL nor a playback id"));
            }
            Err(_) => return Ok(SourceSpec::Ffmpeg(raw.to_string())),
        };
        Ok(match protocol {
            Protocol::Hls => SourceSpec::Hls(livepeer_hls_url(&id)),
            Protocol::Auto => SourceSpec::Playback { id, fallback: true },
            Protocol::WebRtc => SourceSpec::Playback {
                id,
                fallback: false,
            },
        })
    }

    fn resolve_http(
        url: Url,
        protocol: Protocol,
        conflict: impl Fn(&str) -> LucidError,
    ) -> Result<SourceSpec> {
        let says_hls = url.path().to_ascii_lowercase().ends_with(".m3u8");
        if whep::is_whep_url(&url) {
            if protocol == Protocol::Hls {
                return Err(conflict("a WHEP (WebRTC) endpoint"));
            }
            let fallback = (protocol == Protocol::Auto)
                .then(|| livepeer_sibling_hls(&url))
                .flatten();
            return Ok(SourceSpec::Whep { url, fallback });
        }
        match protocol {
            Protocol::WebRtc if says_hls => Err(conflict("an HLS playlist (.m3u8)")),
            Protocol::WebRtc => Ok(SourceSpec::Whep {
                url,
                fallback: None,
            }),
            _ => Ok(SourceSpec::Hls(url)),
        }
    }

    /// A short name for logs, the status line, stats and the window title, with any
    /// credentials in it masked.
    pub fn display_name(&self) -> Redacted {
        match self {
            SourceSpec::TestPattern => Redacted::text("test pattern"),
            SourceSpec::Hls(url) | SourceSpec::Whep { url, .. } => Redacted::url(url),
            SourceSpec::Playback { id, .. } => Redacted::text(&format!("playback id {id}")),
            SourceSpec::Ffmpeg(s) => Redacted::text(s),
            SourceSpec::Canvas {
                width,
                height,
                rate,
            } => Redacted::text(&format!("canvas {width}x{height} @ {rate} fps")),
        }
    }
}

/// `WxH[@FPS]`.
fn canvas_spec(text: &str) -> Option<SourceSpec> {
    let (size, rate) = text.split_once('@').unwrap_or((text, "30"));
    let (w, h) = size.split_once('x')?;
    let side = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (16..=8192).contains(v))
    };
    let rate = rate
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|r| (1..=240).contains(r))?;
    Some(SourceSpec::Canvas {
        width: side(w)? & !1,
        height: side(h)? & !1,
        rate,
    })
}

/// A network stream, opened.
pub enum NetworkStream {
    /// Live or VOD HLS.
    Hls(HlsStream),
    /// WebRTC.
    Whep(WhepStream),
}

/// The network stream that plays, with the protocol and why it was chosen.
pub struct OpenedSource {
    /// The stream.
    pub stream: NetworkStream,
    /// "webrtc" or "hls".
    pub protocol: &'static str,
    /// Why this protocol, when it was not the first choice ("HLS: WebRTC answered 406").
    pub why: Option<String>,
}

impl OpenedSource {
    fn hls(stream: HlsStream, why: Option<String>) -> Self {
        OpenedSource {
            stream: NetworkStream::Hls(stream),
            protocol: "hls",
            why,
        }
    }

    fn whep(stream: WhepStream, why: Option<String>) -> Self {
        OpenedSource {
            stream: NetworkStream::Whep(stream),
            protocol: "webrtc",
            why,
        }
    }
}

/// Opens a network source: HLS, WHEP, or a playback id's WebRTC source with HLS as its
/// fallback. `None` for the sources FFmpeg opens itself.
pub fn open_network(
    spec: &SourceSpec,
    options: &SourceOptions,
    lifecycle: &Lifecycle,
) -> Result<Option<OpenedSource>> {
    let hls = |url: &Url| HlsSource::new(lifecycle.clone()).open(url, options.wait);
    let whep = |url: &Url| {
        WhepSource::new(lifecycle.clone(), options.ice_servers.clone()).open(url, options.wait)
    };
    // WebRTC failed where HLS of the same stream is known: play that, and say why.
    let instead = |e: WhepError, url: &Url| -> Result<OpenedSource> {
        warn!("{e}; playing HLS instead");
        Ok(OpenedSource::hls(
            hls(url)?,
            Some(format!("HLS: {}", e.short_reason())),
        ))
    };
    Ok(Some(match spec {
        SourceSpec::TestPattern | SourceSpec::Ffmpeg(_) | SourceSpec::Canvas { .. } => {
            return Ok(None);
        }
        SourceSpec::Hls(url) => OpenedSource::hls(hls(url)?, None),
        SourceSpec::Whep { url, fallback } => match (whep(url), fallback) {
            (Ok(s), _) => OpenedSource::whep(s, None),
            (Err(e), Some(fallback)) if falls_back(&e) => instead(e, fallback)?,
            (Err(e), _) => return Err(e.into()),
        },
        SourceSpec::Playback { id, fallback } => {
            let (webrtc, hls_url, note) = match livepeer::fetch(&options.livepeer_api, id) {
                Ok(s) => (
                    s.webrtc,
                    s.hls.unwrap_or_else(|| livepeer_hls_url(id)),
                    None,
                ),
                Err(why) => {
                    warn!("Livepeer playback info for {id}: {why}; using the well-known URLs");
                    let webrtc = (!fallback).then(|| livepeer_webrtc_url(id));
                    (
                        webrtc,
                        livepeer_hls_url(id),
                        Some(format!("playback info failed: {why}")),
                    )
                }
            };
            let Some(webrtc) = webrtc else {
                if !fallback {
                    return Err(LucidError::Usage(format!(
                        "playback id {id} has no WebRTC source, and --protocol webrtc allows no other"
                    )));
                }
                let why = note.unwrap_or_else(|| "no WebRTC source".into());
                return Ok(Some(OpenedSource::hls(
                    hls(&hls_url)?,
                    Some(format!("HLS: {why}")),
                )));
            };
            info!("playing {} over WebRTC", Redacted::url(&webrtc));
            match whep(&webrtc) {
                Ok(s) => OpenedSource::whep(s, note),
                Err(e) if *fallback && falls_back(&e) => instead(e, &hls_url)?,
                Err(e) => return Err(e.into()),
            }
        }
    }))
}

/// Reads a small HTTP body (an SDP answer, an error message, playback info) whole, up to
/// `cap` bytes; a larger one is refused, not cut.
pub(crate) fn read_capped(
    response: reqwest::blocking::Response,
    cap: u64,
) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read;
    let mut body = Vec::new();
    response
        .take(cap + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the body failed ({e})"))?;
    if body.len() as u64 > cap {
        return Err(format!("the body is larger than {cap} bytes"));
    }
    Ok(body)
}

/// Every WebRTC failure but a stop falls back when there is somewhere to fall back to: 406
/// says so outright, and a stream whose WebRTC never came up may still play over HLS.
fn falls_back(e: &WhepError) -> bool {
    !matches!(e, WhepError::Stopped)
}

/// The livepeercdn HLS master playlist for a playback id.
pub fn livepeer_hls_url(playback_id: &str) -> Url {
    Url::parse(&format!("{LIVEPEER_HLS_BASE}/{playback_id}/index.m3u8"))
        .expect("playback ids are checked to be URL-safe")
}

/// The livepeercdn WHEP endpoint for a playback id.
pub fn livepeer_webrtc_url(playback_id: &str) -> Url {
    Url::parse(&format!("{LIVEPEER_WEBRTC_BASE}/{playback_id}"))
        .expect("playback ids are checked to be URL-safe")
}

/// Livepeer's `/webrtc/<id>` has its HLS at `/hls/<id>/index.m3u8` on the same host.
fn livepeer_sibling_hls(whep: &Url) -> Option<Url> {
    let segments: Vec<&str> = whep.path_segments()?.filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [.., "webrtc", id] if is_playback_id(id) => {
            let mut url = whep.clone();
            url.set_path(&format!("/hls/{id}/index.m3u8"));
            Some(url)
        }
        _ => None,
    }
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

    fn auto(url: &str) -> SourceSpec {
        SourceSpec::resolve(Some(url), Protocol::Auto).unwrap()
    }

    #[test]
    fn resolves_every_form_of_url() {
        assert_eq!(
            SourceSpec::resolve(None, Protocol::Auto).unwrap(),
            SourceSpec::TestPattern
        );
        let playback = SourceSpec::Playback {
            id: "abcd1234efgh5678".into(),
            fallback: true,
        };
        assert_eq!(auto("abcd1234efgh5678"), playback);
        assert_eq!(auto("https://lvpr.tv/?v=abcd1234efgh5678"), playback);
        let tokened = "https://cdn.example/hls/x/index.m3u8?tkn=abc";
        assert_eq!(auto(tokened), SourceSpec::Hls(Url::parse(tokened).unwrap()));
        assert_eq!(
            auto("rtmp://127.0.0.1/live/x"),
            SourceSpec::Ffmpeg("rtmp://127.0.0.1/live/x".into())
        );
        assert_eq!(
            auto("missing-clip.mp4"),
            SourceSpec::Ffmpeg("missing-clip.mp4".into())
        );
    }

    #[test]
    fn whep_urls_and_protocol_choices() {
        let lp = "https://livepeercdn.studio/webrtc/abcd1234efgh5678";
        assert_eq!(
            auto(lp),
            SourceSpec::Whep {
                url: Url::parse(lp).unwrap(),
                fallback: Some(
                    Url::parse("https://livepeercdn.studio/hls/abcd1234efgh5678/index.m3u8")
                        .unwrap()
                ),
            }
        );
        let gw = "https://gw.example/live/stream-1/whep";
        assert_eq!(
            auto(gw),
            SourceSpec::Whep {
                url: Url::parse(gw).unwrap(),
                fallback: None
            }
        );
        let forced = SourceSpec::resolve(Some("http://127.0.0.1:9/offer"), Protocol::WebRtc);
        assert!(matches!(
            forced,
            Ok(SourceSpec::Whep { fallback: None, .. })
        ));
        assert_eq!(
            SourceSpec::resolve(Some("abcd1234efgh5678"), Protocol::Hls).unwrap(),
            SourceSpec::Hls(
                Url::parse("https://livepeercdn.studio/hls/abcd1234efgh5678/index.m3u8").unwrap()
            )
        );
        assert_eq!(
            SourceSpec::resolve(Some("abcd1234efgh5678"), Protocol::WebRtc).unwrap(),
            SourceSpec::Playback {
                id: "abcd1234efgh5678".into(),
                fallback: false
            }
        );
        for (url, protocol) in [
            (gw, Protocol::Hls),
            ("https://cdn.example/x/index.m3u8", Protocol::WebRtc),
            ("rtmp://127.0.0.1/live/x", Protocol::WebRtc),
            ("missing-clip.mp4", Protocol::Hls),
        ] {
            let err = SourceSpec::resolve(Some(url), protocol).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{url}: {err}");
        }
    }
}
