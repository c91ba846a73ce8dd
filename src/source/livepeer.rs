//! Livepeer's playback info (`GET <api>/api/playback/<id>`): which sources a playback id
//! has. Lucid plays its `WebRTC (H264)` source first and its HLS source as the fallback.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::redact::redact_text;

/// Where Livepeer's API lives unless `--livepeer-api` says otherwise.
pub const DEFAULT_API: &str = "https://livepeer.studio";
/// A playback info document larger than this is not one.
const MAX_INFO: u64 = 256 * 1024;

/// The sources playback info lists, by protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaybackSources {
    /// The WHEP endpoint (`WebRTC (H264)`).
    pub webrtc: Option<Url>,
    /// The HLS master playlist.
    pub hls: Option<Url>,
}

#[derive(Deserialize)]
struct Info {
    meta: Meta,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(default)]
    source: Vec<Source>,
}

#[derive(Deserialize)]
struct Source {
    #[serde(default)]
    hrn: String,
    #[serde(rename = "type", default)]
    kind: String,
    url: String,
}

/// Reads a playback info document; relative URLs resolve against `base`, the URL that
/// answered (after redirects).
pub fn parse(body: &[u8], base: &Url) -> Result<PlaybackSources, String> {
    let info: Info =
        serde_json::from_slice(body).map_err(|e| format!("not Livepeer playback info ({e})"))?;
    let mut found = PlaybackSources::default();
    for s in info.meta.source {
        let Ok(url) = base.join(&s.url) else { continue };
        if !matches!(url.scheme(), "http" | "https") {
            continue;
        }
        let webrtc = s.hrn.eq_ignore_ascii_case("WebRTC (H264)") || s.kind == "html5/video/h264";
        let hls = s.kind == "html5/application/vnd.apple.mpegurl" || s.hrn.starts_with("HLS");
        if webrtc && found.webrtc.is_none() {
            found.webrtc = Some(url);
        } else if hls && found.hls.is_none() {
            found.hls = Some(url);
        }
    }
    if found.webrtc.is_none() && found.hls.is_none() {
        return Err("playback info lists neither a WebRTC nor an HLS source".into());
    }
    Ok(found)
}

/// Asks `api` for the sources of `playback_id`. A short timeout: when it fails, Lucid
/// goes on with the well-known HLS URL.
pub fn fetch(api: &Url, playback_id: &str) -> Result<PlaybackSources, String> {
    let url = api
        .join(&format!("api/playback/{playback_id}"))
        .map_err(|e| format!("bad --livepeer-api ({e})"))?;
    let http = reqwest::blocking::Client::builder()
        .user_agent(concat!("lucid/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let response = http
        .get(url)
        .send()
        .map_err(|e| redact_text(&e.to_string()).into_owned())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("playback info answered {}", status.as_u16()));
    }
    let base = response.url().clone();
    let body =
        super::read_capped(response, MAX_INFO).map_err(|why| format!("playback info: {why}"))?;
    parse(&body, &base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_shape() {
        let body = br#"{"type":"live","meta":{"live":1,"source":[
            {"hrn":"HLS (TS)","type":"html5/application/vnd.apple.mpegurl","url":"https://cdn.example/hls/x/index.m3u8"},
            {"hrn":"WebRTC (H264)","type":"html5/video/h264","url":"/webrtc/x"},
            {"hrn":"Thumbnail","type":"image/png","url":"https://cdn.example/x.png"}]}}"#;
        let base = Url::parse("https://livepeer.studio/api/playback/x").unwrap();
        let s = parse(body, &base).unwrap();
        assert_eq!(
            s.webrtc.unwrap().as_str(),
            "https://livepeer.studio/webrtc/x"
        );
        assert_eq!(
            s.hls.unwrap().as_str(),
            "https://cdn.example/hls/x/index.m3u8"
        );
        assert!(parse(b"{}", &base).is_err());
        assert!(parse(br#"{"meta":{"source":[]}}"#, &base).is_err());
        assert!(parse(b"<html>", &base).is_err());
    }
}
