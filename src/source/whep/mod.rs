//! WebRTC playback through WHEP (RFC 9725): Livepeer's `/webrtc/<playback id>` and
//! Daydream's gateway `.../whep`. str0m does ICE, DTLS, SRTP, RTCP and H.264
//! depacketization (single NAL, STAP-A, FU-A, with reordering); this module does the
//! signalling, the keyframe-on-loss policy, the adaptive jitter buffer, lip sync and
//! reconnection, and hands H.264 access units and Opus packets to the decode thread.

pub mod jitter;
pub mod lipsync;
pub mod nal;
mod session;
pub mod signal;
pub mod stun;

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};
use url::Url;

pub use crate::error::whep::WhepError;
pub use session::{AccessUnit, SoundPacket, WebRtcSnapshot, WhepStats};

use crate::lifecycle::Lifecycle;
use crate::redact::Redacted;
use session::{Feed, Session};
use signal::Signalling;
use stun::StunServer;

/// Access units queued for the decoder (a quarter second at 30 fps).
const UNIT_QUEUE: usize = 8;
/// Opus packets queued for the decoder (a second of 20 ms packets).
const SOUND_QUEUE: usize = 50;

/// Opens WHEP sessions.
pub struct WhepSource {
    lifecycle: Lifecycle,
    signalling: Signalling,
    stun: Vec<StunServer>,
}

/// A playing WebRTC stream.
pub struct WhepStream {
    /// H.264 access units, in order, paced by the jitter buffer.
    pub units: Receiver<AccessUnit>,
    /// Opus packets, stamped on the access units' timeline.
    pub sound: Receiver<SoundPacket>,
    /// Receives the reason once, when the stream is gone for good.
    pub failure: Receiver<WhepError>,
    /// Figures for the status line and stats.
    pub stats: WhepStats,
    /// The endpoint, for messages.
    pub endpoint: Redacted,
}

impl WhepSource {
    /// A client that stops when `lifecycle` does and asks `stun` servers (`--ice-server`)
    /// for server-reflexive candidates.
    pub fn new(lifecycle: Lifecycle, stun: Vec<StunServer>) -> Self {
        WhepSource {
            signalling: Signalling::new(lifecycle.clone()),
            lifecycle,
            stun,
        }
    }

    /// Offers until the endpoint answers (404/503 retried every 0.5 s and 429 every 2 s,
    /// for up to `wait`), connects, and starts the `lucid-webrtc` thread. `wait` is also
    /// how long a lost connection may stay lost.
    pub fn open(&self, url: &Url, wait: Duration) -> Result<WhepStream, WhepError> {
        let session = Session::connect(url, &self.signalling, &self.stun, wait, &self.lifecycle)?;
        let (units_tx, units) = bounded(UNIT_QUEUE);
        let (sound_tx, sound) = bounded(SOUND_QUEUE);
        let (failure_tx, failure) = bounded(1);
        let stats = WhepStats::default();
        let feed = Feed {
            units: units_tx,
            sound: sound_tx,
            stats: stats.clone(),
            epoch: Instant::now(),
        };
        let endpoint = Redacted::url(url);
        let (url, signalling, lifecycle) =
            (url.clone(), self.signalling.clone(), self.lifecycle.clone());
        let stun = self.stun.clone();
        self.lifecycle.spawn("lucid-webrtc", move || {
            let ice = (&signalling, stun.as_slice());
            match session::run(session, &url, ice, &feed, wait, &lifecycle) {
                Ok(()) | Err(WhepError::Stopped) => {}
                Err(e) => {
                    let _ = failure_tx.send(e);
                }
            }
        });
        Ok(WhepStream {
            units,
            sound,
            failure,
            stats,
            endpoint,
        })
    }
}

/// True for a URL that names a WHEP endpoint: a path ending in `/whep` (Daydream's gateway
/// and most servers), or Livepeer's `/webrtc/<playback id>`.
pub fn is_whep_url(url: &Url) -> bool {
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    match segments.as_slice() {
        [.., last] if last.eq_ignore_ascii_case("whep") => true,
        [.., "webrtc", id] => !id.contains('.'),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whep_urls_are_recognised() {
        let yes = [
            "https://livepeercdn.studio/webrtc/abcd1234efgh5678",
            "https://gw.daydream.live/live/video-to-video/stream-1/whep",
            "http://127.0.0.1:8889/cam/whep/",
            "https://x.example/WHEP?tkn=1",
        ];
        let no = [
            "https://livepeercdn.studio/hls/abcd/index.m3u8",
            "https://x.example/webrtc/index.m3u8",
            "https://x.example/",
        ];
        for u in yes {
            assert!(is_whep_url(&Url::parse(u).unwrap()), "{u}");
        }
        for u in no {
            assert!(!is_whep_url(&Url::parse(u).unwrap()), "{u}");
        }
    }
}
