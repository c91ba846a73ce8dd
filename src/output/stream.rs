//! `--output rtmp://…`, `rtmps://…`, `srt://…`, `udp://…`: the show as H.264 to a
//! streaming platform, a venue's encoder or another machine, through FFmpeg's muxers (FLV
//! for RTMP, MPEG-TS for SRT and UDP) and protocols.
//!
//! A connection that fails or drops is opened again with backoff (0.5 s doubling to 5 s),
//! from a fresh encoder so the receiver gets headers and a keyframe first; frames that come
//! while it is down are dropped and counted. Nothing else stops: the window, the recording
//! and the other outputs go on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ffmpeg_next as ff;
use tracing::{info, warn};

use super::OutputState;
use super::encode::{EncoderSettings, Picture, RateGoal};
use super::interrupt::CutFlag;
use super::record::{Muxer, MuxerOpen};
use crate::error::Result;
use crate::redact::Redacted;

/// First wait before opening a failed connection again; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long an SRT connection stays open after the last frame (a few receive latencies).
const SRT_CLOSE_DELAY: Duration = Duration::from_millis(500);
/// How long a network read or write may block before the connection counts as lost.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A network output's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RTMP or RTMPS: FLV.
    Rtmp,
    /// SRT (caller): MPEG-TS.
    Srt,
    /// Plain UDP: MPEG-TS.
    Udp,
}

impl Protocol {
    /// The output's name in the status line and stats (`rtmp`, `srt`, `udp`).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Rtmp => "rtmp",
            Protocol::Srt => "srt",
            Protocol::Udp => "udp",
        }
    }

    fn container(self) -> &'static str {
        match self {
            Protocol::Rtmp => "flv",
            Protocol::Srt | Protocol::Udp => "mpegts",
        }
    }
}

/// A network output's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTarget {
    /// The URL as given (it may hold a stream key: never print it).
    url: String,
    /// Its protocol.
    pub protocol: Protocol,
}

impl StreamTarget {
    /// Recognises a network output URL; `None` when `text` is not one.
    pub fn parse(text: &str) -> Option<std::result::Result<StreamTarget, String>> {
        let (scheme, rest) = text.split_once("://")?;
        let protocol = match scheme.to_ascii_lowercase().as_str() {
            "rtmp" | "rtmps" => Protocol::Rtmp,
            "srt" => Protocol::Srt,
            "udp" => Protocol::Udp,
            _ => return None,
        };
        let host = rest.split(['/', '?']).next().unwrap_or("");
        if host.is_empty() {
            return Some(Err(format!("{scheme}:// needs a host")));
        }
        if protocol != Protocol::Rtmp && !host.contains(':') {
            return Some(Err(format!("{scheme}:// needs a port (host:port)")));
        }
        Some(Ok(StreamTarget {
            url: text.to_string(),
            protocol,
        }))
    }

    /// The URL with its secrets masked: an RTMP stream key (the path after the
    /// application), SRT's `passphrase` and `streamid`, any user and password.
    pub fn shown(&self) -> String {
        if self.protocol == Protocol::Rtmp
            && let Some((scheme, rest)) = self.url.split_once("://")
        {
            // rtmp://host/app/KEY: everything after the application names the stream.
            let mut parts = rest.splitn(3, '/');
            let (host, app, key) = (parts.next(), parts.next(), parts.next());
            if let (Some(host), Some(app), Some(key)) = (host, app, key)
                && !key.is_empty()
            {
                return Redacted::text(&format!("{scheme}://{host}/{app}/***")).to_string();
            }
        }
        Redacted::text(&self.url).to_string()
    }
}

/// A network output that reconnects.
pub struct StreamOutput {
    target: StreamTarget,
    picture: Picture,
    settings: EncoderSettings,
    muxer: Option<Muxer>,
    next_try: Instant,
    backoff: Duration,
    state: std::sync::Arc<OutputState>,
    /// The last error logged, so a dead receiver logs once per change, not per attempt.
    last_error: Option<String>,
    /// Cuts the connection's blocking I/O (and any later attempt) short once finishing
    /// has waited long enough for a receiver that stopped reading.
    cut: CutFlag,
    /// Carry the show's sound (AAC).
    audio: bool,
    /// Silence put in the sound's gaps by connections before this one, in samples.
    filled_before: u64,
}

impl StreamOutput {
    /// The output, not yet connected: it connects on the first frame, so a receiver that
    /// is not up yet delays nothing.
    pub fn new(
        target: StreamTarget,
        picture: Picture,
        settings: EncoderSettings,
        state: std::sync::Arc<OutputState>,
        cut: CutFlag,
        audio: bool,
    ) -> StreamOutput {
        state.set_phase(super::OutputPhase::Connecting);
        StreamOutput {
            target,
            picture,
            settings,
            muxer: None,
            next_try: Instant::now(),
            backoff: FIRST_BACKOFF,
            state,
            last_error: None,
            cut,
            audio,
            filled_before: 0,
        }
    }

    /// Sends sound on the connection's AAC track; nothing while it is down (the next
    /// connection's sound starts with its first picture). Returns the bytes sent.
    pub fn write_audio(&mut self, chunk: &crate::decode::AudioChunk) -> u64 {
        let Some(muxer) = self.muxer.as_mut() else {
            return 0;
        };
        match muxer.write_audio(chunk) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.lost(e.to_string());
                0
            }
        }
    }

    /// Silence put in the sound's gaps so far, in samples.
    pub fn audio_filled(&self) -> u64 {
        self.filled_before + self.muxer.as_ref().map_or(0, Muxer::audio_filled)
    }

    fn connect(&mut self) {
        let shown = self.target.shown();
        let mut io = ff::Dictionary::new();
        io.set("rw_timeout", &IO_TIMEOUT.as_micros().to_string());
        match self.target.protocol {
            // SRT counts its connect timeout in milliseconds; writes time out by rw_timeout.
            Protocol::Srt => {
                io.set("connect_timeout", &IO_TIMEOUT.as_millis().to_string());
                // Live mode drops what is unsent on close: wait for it, so a clean stop
                // delivers the last frames.
                io.set("linger", "1");
            }
            // One MPEG-TS packet group per datagram, as receivers expect.
            Protocol::Udp => io.set("pkt_size", "1316"),
            Protocol::Rtmp => {}
        }
        let open = MuxerOpen {
            target: Path::new(&self.target.url),
            shown: PathBuf::from(&shown),
            container: self.target.protocol.container(),
            io_options: io,
            muxer_options: ff::Dictionary::new(),
            goal: RateGoal::Stream,
            cut: self.cut.clone(),
            audio: self.audio,
        };
        match Muxer::open(open, self.picture, &self.settings) {
            Ok(mut muxer) => {
                if self.target.protocol == Protocol::Srt {
                    // SRT hands data over after its latency (120 ms by default): a close
                    // any sooner loses the last frames at the receiver.
                    muxer.hold_open(SRT_CLOSE_DELAY);
                }
                info!("{shown}: connected ({})", muxer.encoder_name());
                self.state.set_encoder(muxer.encoder_name());
                if self.state.phase() == super::OutputPhase::Reconnecting {
                    self.state.count_reconnect();
                }
                self.state.set_phase(super::OutputPhase::Live);
                self.muxer = Some(muxer);
                self.backoff = FIRST_BACKOFF;
                self.last_error = None;
            }
            Err(e) => self.lost(e.to_string()),
        }
    }

    /// The connection failed or dropped: try again after the backoff.
    fn lost(&mut self, why: String) {
        if let Some(muxer) = self.muxer.take() {
            self.filled_before += muxer.audio_filled();
        }
        if self.last_error.as_deref() != Some(why.as_str()) {
            warn!(
                "{why}; trying again every {:.1}-{:.0} s, the rest of the show goes on",
                self.backoff.as_secs_f64(),
                MAX_BACKOFF.as_secs_f64()
            );
            self.last_error = Some(why.clone());
        }
        self.state.set_error(Some(why));
        if self.state.phase() == super::OutputPhase::Live {
            self.state.set_phase(super::OutputPhase::Reconnecting);
        }
        self.next_try = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Sends one frame; `Ok(None)` when it was dropped because the connection is down,
    /// else the bytes sent.
    pub fn write(&mut self, frame: &mut ff::frame::Video, pts: Duration) -> Result<Option<u64>> {
        // Once cut, finishing has given up on the receiver: no new attempt.
        if self.muxer.is_none() && Instant::now() >= self.next_try && !self.cut.is_cut() {
            self.connect();
        }
        let Some(muxer) = self.muxer.as_mut() else {
            return Ok(None);
        };
        match muxer.write(frame, pts) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) => {
                // No trailer: the connection is gone. The next one starts from scratch.
                self.lost(e.to_string());
                Ok(None)
            }
        }
    }

    /// Flushes and closes the connection, if there is one.
    pub fn finish(self) -> Result<()> {
        if let Some(muxer) = self.muxer {
            let shown = self.target.shown();
            match muxer.finish() {
                Ok(frames) => info!("{shown}: closed after {frames} frames"),
                Err(e) => warn!("{e}"),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_urls_are_recognised_and_checked() {
        let t = StreamTarget::parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh")
            .unwrap()
            .unwrap();
        assert_eq!(t.protocol, Protocol::Rtmp);
        assert_eq!(t.shown(), "rtmp://a.rtmp.youtube.com/live2/***");
        let t = StreamTarget::parse("srt://10.0.0.2:9000?streamid=secret&passphrase=hunter22")
            .unwrap()
            .unwrap();
        assert_eq!(t.protocol, Protocol::Srt);
        assert!(!t.shown().contains("hunter22"), "{}", t.shown());
        assert!(!t.shown().contains("secret"), "{}", t.shown());
        assert_eq!(
            StreamTarget::parse("udp://239.0.0.1:1234")
                .unwrap()
                .unwrap()
                .protocol,
            Protocol::Udp
        );
        assert!(StreamTarget::parse("udp://239.0.0.1").unwrap().is_err());
        assert!(StreamTarget::parse("rtmp:///live").unwrap().is_err());
        assert!(StreamTarget::parse("frames/%06d.png").is_none());
        assert!(StreamTarget::parse("http://x/y").is_none());
    }
}
