//! One WebRTC receive session on str0m, driven from a plain thread with a blocking UDP
//! socket: offer, answer, ICE and DTLS, then H.264 frames through the jitter buffer to the
//! decode thread, and Opus packets placed beside them by [`super::lipsync`]. Losses ask for a keyframe and drop frames until it comes (the decoder
//! never sees a broken reference, so it never shows a corrupt picture); a session that goes
//! quiet is replaced by a new one, with backoff, for up to `--wait`.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use serde::Serialize;
use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tracing::{debug, info, warn};
use url::Url;

use super::jitter::{JitterBuffer, VIDEO_CLOCK_RATE};
use super::lipsync::LipSync;
use super::nal;
use super::signal::Signalling;
use super::stun::StunServer;
use crate::error::WhepError;
use crate::lifecycle::Lifecycle;
use crate::redact::Redacted;

/// STUN servers get this long, in all, to say what our public address is.
const STUN_BUDGET: Duration = Duration::from_millis(500);
/// ICE and DTLS must be up this soon after the answer (Livepeer's player waits 5 s).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// No media for this long means the connection is lost: reconnect.
pub const MEDIA_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the stop flag is looked at while waiting on the socket.
const STOP_POLL: Duration = Duration::from_millis(50);
/// A keyframe request unanswered for this long is sent again.
const KEYFRAME_RETRY: Duration = Duration::from_millis(500);
/// Backoff between reconnects: starts here, doubles, and stays at most `MAX_BACKOFF` so
/// playback resumes within about a second of the server coming back.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a frame may wait for room in the decode queue before it is dropped.
const QUEUE_PATIENCE: Duration = Duration::from_millis(200);
/// Largest UDP datagram taken in.
const DATAGRAM: usize = 2048;

/// One H.264 access unit on its way to the decoder.
#[derive(Debug, Clone)]
pub struct AccessUnit {
    /// Annex B bytes.
    pub data: Arc<[u8]>,
    /// When it is due, from the start of playback (the jitter buffer's playout time).
    pub pts: Duration,
    /// False when a newer frame was due at once: decode it, don't show it.
    pub show: bool,
}

/// One Opus packet on its way to the decoder.
#[derive(Debug, Clone)]
pub struct SoundPacket {
    /// The Opus payload.
    pub data: Arc<[u8]>,
    /// When it is due, on the same timeline as [`AccessUnit::pts`] (see [`super::lipsync`]).
    pub pts: Duration,
}

/// WebRTC figures for the status line and `--stats-json`, shared with the session thread.
#[derive(Debug, Clone, Default)]
pub struct WhepStats(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    rtt_us: AtomicU64,
    network_jitter_us: AtomicU64,
    loss_permille: AtomicU64,
    keyframe_requests: AtomicU64,
    buffer_target_us: AtomicU64,
    late: AtomicU64,
    hidden: AtomicU64,
    gaps: AtomicU64,
    reconnects: AtomicU64,
    frames: AtomicU64,
    sound_packets: AtomicU64,
    sound_dropped: AtomicU64,
}

/// A sample of [`WhepStats`], as `--stats-json` writes it under `webrtc`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WebRtcSnapshot {
    /// Round-trip time from RTCP, when the server reports it.
    pub rtt_ms: Option<f64>,
    /// Interarrival jitter (RFC 3550) of the video RTP stream.
    pub jitter_ms: f64,
    /// Fraction of packets lost in the last receiver report, 0..1.
    pub packet_loss: f64,
    /// Keyframe requests (PLI) sent.
    pub keyframe_requests: u64,
    /// The jitter buffer's target delay now.
    pub jitter_buffer_ms: f64,
    /// Frames that arrived after their playout time.
    pub late_frames: u64,
    /// Frames decoded but not shown to catch up.
    pub hidden_frames: u64,
    /// Gaps in the RTP stream (lost packets the depacketizer could not repair).
    pub gaps: u64,
    /// Sessions re-established after a loss.
    pub reconnects: u64,
    /// Frames received.
    pub frames: u64,
    /// Opus packets received.
    pub sound_packets: u64,
    /// Opus packets dropped because the decoder was behind.
    pub sound_dropped: u64,
}

impl WhepStats {
    /// The figures now.
    pub fn snapshot(&self) -> WebRtcSnapshot {
        let c = &self.0;
        let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1000.0;
        let rtt = c.rtt_us.load(Ordering::Relaxed);
        WebRtcSnapshot {
            rtt_ms: (rtt != 0).then(|| rtt as f64 / 1000.0),
            jitter_ms: ms(&c.network_jitter_us),
            packet_loss: c.loss_permille.load(Ordering::Relaxed) as f64 / 1000.0,
            keyframe_requests: c.keyframe_requests.load(Ordering::Relaxed),
            jitter_buffer_ms: ms(&c.buffer_target_us),
            late_frames: c.late.load(Ordering::Relaxed),
            hidden_frames: c.hidden.load(Ordering::Relaxed),
            gaps: c.gaps.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            frames: c.frames.load(Ordering::Relaxed),
            sound_packets: c.sound_packets.load(Ordering::Relaxed),
            sound_dropped: c.sound_dropped.load(Ordering::Relaxed),
        }
    }
}

/// A connected session: ICE and DTLS are up.
pub struct Session {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    video: Mid,
    audio: Mid,
    /// To DELETE on stop, when the server gave one.
    resource: Option<Url>,
    buf: Vec<u8>,
}

impl Session {
    /// Offers, waits for the answer (retrying warm-up answers for up to `wait`) and brings
    /// ICE and DTLS up.
    pub fn connect(
        url: &Url,
        signalling: &Signalling,
        stun: &[StunServer],
        wait: Duration,
        lifecycle: &Lifecycle,
    ) -> Result<Session, WhepError> {
        // Like Livepeer's player: learn where the endpoint redirects first, offer there,
        // and ask that host's STUN server too.
        let endpoint = signalling.resolve(url);
        let mut stun = stun.to_vec();
        if endpoint.host_str() != url.host_str()
            && let Some(host) = endpoint.host_str()
        {
            stun.push(StunServer {
                host: host.to_string(),
                port: super::stun::DEFAULT_PORT,
            });
        }
        let url = &endpoint;
        let local_ip = local_ip_toward(url)?;
        let socket = UdpSocket::bind(SocketAddr::new(local_ip, 0))
            .map_err(|e| local("binding a UDP socket", e))?;
        let local = socket
            .local_addr()
            .map_err(|e| local("reading the UDP socket's address", e))?;
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            // Daydream's gateway connects faster when the offer has an audio section.
            .enable_opus(true, false)
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(Instant::now());
        let candidate = Candidate::host(local, "udp").map_err(|e| WhepError::Local {
            reason: format!("host candidate {local}: {e}"),
            source: None,
        })?;
        rtc.add_local_candidate(candidate);
        if !stun.is_empty() {
            for public in super::stun::reflexive_addresses(&socket, &stun, STUN_BUDGET) {
                if public == local {
                    continue;
                }
                match Candidate::server_reflexive(public, local, "udp") {
                    Ok(c) => {
                        debug!("WebRTC: server-reflexive candidate {public}");
                        rtc.add_local_candidate(c);
                    }
                    Err(e) => debug!("WebRTC: STUN gave an unusable address {public}: {e}"),
                }
            }
        }
        let mut api = rtc.sdp_api();
        let video = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let audio = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let Some((offer, pending)) = api.apply() else {
            return Err(WhepError::Local {
                reason: "str0m made no offer".into(),
                source: None,
            });
        };
        let answered = signalling.offer_until_answered(url, &offer.to_sdp_string(), wait)?;
        let bad = |reason: String| WhepError::BadAnswer {
            url: Redacted::url(url),
            reason,
        };
        let answer = SdpAnswer::from_sdp_string(&answered.sdp).map_err(|e| bad(e.to_string()))?;
        rtc.sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| bad(e.to_string()))?;
        // str0m accepts an answer whose video is another codec; Lucid decodes H.264 only.
        let h264 = rtc.media(video).is_some_and(|m| {
            m.remote_pts().iter().any(|pt| {
                rtc.codec_config()
                    .params()
                    .iter()
                    .any(|p| p.pt() == *pt && p.spec().codec == Codec::H264)
            })
        });
        if !h264 {
            return Err(bad(format!(
                "the answer's video is not H.264 (it offers {}); Lucid plays H.264 over WebRTC",
                video_codecs(&answered.sdp)
            )));
        }
        debug!("WHEP: answered by {}", Redacted::url(&answered.endpoint));
        let mut session = Session {
            rtc,
            socket,
            local,
            video,
            audio,
            resource: answered.resource,
            buf: vec![0; DATAGRAM],
        };
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if lifecycle.stopping() {
                session.close(signalling);
                return Err(WhepError::Stopped);
            }
            let mut connected = false;
            let timeout = session.drive(|e| connected |= matches!(e, Event::Connected))?;
            if connected {
                return Ok(session);
            }
            let now = Instant::now();
            if now >= deadline {
                session.close(signalling);
                return Err(WhepError::Connection {
                    url: Redacted::url(url),
                    reason: "did not connect (ICE/DTLS) within 5 s".into(),
                    waited: CONNECT_TIMEOUT,
                });
            }
            session.receive(timeout.min(deadline).min(now + STOP_POLL))?;
        }
    }

    /// Sends what str0m wants sent and hands its events to `on_event`, until it wants
    /// to wait; returns until when.
    fn drive(&mut self, mut on_event: impl FnMut(Event)) -> Result<Instant, WhepError> {
        loop {
            match self.rtc.poll_output().map_err(rtc_error)? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    if let Err(e) = self.socket.send_to(&t.contents, t.destination) {
                        debug!("WebRTC: sending to {} failed: {e}", t.destination);
                    }
                }
                Output::Event(e) => on_event(e),
            }
        }
    }

    /// Waits on the socket until `until` and feeds what arrives (or the timeout) to str0m.
    fn receive(&mut self, until: Instant) -> Result<(), WhepError> {
        let now = Instant::now();
        let wait = until.saturating_duration_since(now);
        if wait.is_zero() {
            return self
                .rtc
                .handle_input(Input::Timeout(now))
                .map_err(rtc_error);
        }
        self.socket
            .set_read_timeout(Some(wait))
            .map_err(|e| local("setting the socket timeout", e))?;
        self.buf.resize(DATAGRAM, 0);
        match self.socket.recv_from(&mut self.buf) {
            Ok((n, source)) => {
                let Ok(receive) = Receive::new(Protocol::Udp, source, self.local, &self.buf[..n])
                else {
                    // Not STUN, DTLS or RTP: someone else's datagram.
                    return Ok(());
                };
                self.rtc
                    .handle_input(Input::Receive(Instant::now(), receive))
                    .map_err(rtc_error)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => self
                .rtc
                .handle_input(Input::Timeout(Instant::now()))
                .map_err(rtc_error),
            // An ICMP "port unreachable" from a peer that went away shows up here on Linux.
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(local("receiving", e)),
        }
    }

    fn request_keyframe(&mut self) -> bool {
        let Some(mut writer) = self.rtc.writer(self.video) else {
            return false;
        };
        writer
            .request_keyframe(None, KeyframeRequestKind::Pli)
            .is_ok()
    }

    /// Ends the session: DELETE on the server when it gave a resource, then close.
    fn close(mut self, signalling: &Signalling) {
        if let Some(resource) = self.resource.take() {
            signalling.delete(&resource);
        }
        self.rtc.disconnect();
    }
}

/// Where a session's frames go, and what it reports.
pub struct Feed {
    /// Access units for the decode thread.
    pub units: Sender<AccessUnit>,
    /// Opus packets for the decode thread, placed on the picture's timeline.
    pub sound: Sender<SoundPacket>,
    /// Shared figures.
    pub stats: WhepStats,
    /// Time zero of presentation timestamps.
    pub epoch: Instant,
}

/// Receives until Lucid stops (`Ok`) or the stream is gone for longer than `wait`.
pub fn run(
    mut session: Session,
    url: &Url,
    (signalling, stun): (&Signalling, &[StunServer]),
    feed: &Feed,
    wait: Duration,
    lifecycle: &Lifecycle,
) -> Result<(), WhepError> {
    loop {
        let lost = receive_until_lost(&mut session, feed, lifecycle)?;
        let Some(why) = lost else {
            session.close(signalling);
            return Ok(());
        };
        session.close(signalling);
        feed.stats.0.reconnects.fetch_add(1, Ordering::Relaxed);
        warn!("WebRTC: {why}; holding the last frame and reconnecting");
        session = reconnect(url, (signalling, stun), wait, lifecycle)?;
        info!("WebRTC: reconnected");
    }
}

/// New sessions with backoff until one connects, Lucid stops, or `wait` runs out.
fn reconnect(
    url: &Url,
    (signalling, stun): (&Signalling, &[StunServer]),
    wait: Duration,
    lifecycle: &Lifecycle,
) -> Result<Session, WhepError> {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    loop {
        let left = wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(WhepError::Connection {
                url: Redacted::url(url),
                reason: format!(
                    "media stopped and did not come back within {:.0} s",
                    wait.as_secs_f64()
                ),
                waited: wait,
            });
        }
        match Session::connect(url, signalling, stun, left, lifecycle) {
            Ok(s) => return Ok(s),
            Err(WhepError::Stopped) => return Err(WhepError::Stopped),
            // 406, 401, 403: the server will not have this session again.
            Err(e @ WhepError::HttpStatus { status, .. })
                if super::signal::verdict(status) == super::signal::Verdict::Refused =>
            {
                return Err(e);
            }
            Err(e) => {
                debug!("WebRTC: reconnect failed: {e}");
                if !signalling.sleep(backoff) {
                    return Err(WhepError::Stopped);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Receives media until the connection is lost (`Some(why)`) or Lucid stops (`None`).
fn receive_until_lost(
    session: &mut Session,
    feed: &Feed,
    lifecycle: &Lifecycle,
) -> Result<Option<String>, WhepError> {
    let stats = &feed.stats.0;
    let mut jitter: JitterBuffer<(u64, Arc<[u8]>)> = JitterBuffer::new(VIDEO_CLOCK_RATE);
    let mut lipsync = LipSync::new(VIDEO_CLOCK_RATE, Instant::now());
    let mut gate = nal::KeyframeGate::new(KEYFRAME_RETRY);
    let mut last_media = Instant::now();
    let mut ice_lost = false;
    loop {
        if lifecycle.stopping() {
            return Ok(None);
        }
        let mut events = Vec::new();
        let timeout = match session.drive(|e| events.push(e)) {
            Ok(t) => t,
            Err(e) => return Ok(Some(format!("the connection failed ({e})"))),
        };
        let now = Instant::now();
        for event in events {
            match event {
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    ice_lost = true;
                }
                Event::MediaData(data) if data.mid == session.audio => {
                    stats.sound_packets.fetch_add(1, Ordering::Relaxed);
                    let rtp = data.time.numer();
                    let reported = lipsync.reported();
                    lipsync.audio_arrived(rtp, data.network_time, sender_report(&data));
                    if !reported && lipsync.reported() {
                        debug!("WebRTC: sound lined up by the sender's reports from now");
                    }
                    // Before the first picture there is nothing to place it beside (and
                    // nothing of the show to carry it yet).
                    if let Some(due) = lipsync.audio_due(rtp)
                        && let Some(pts) = due.checked_duration_since(feed.epoch)
                    {
                        let packet = SoundPacket {
                            data: data.data.clone(),
                            pts,
                        };
                        // A decoder that is behind loses sound, never the picture.
                        if let Err(TrySendError::Full(_)) = feed.sound.try_send(packet) {
                            stats.sound_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Event::MediaData(data) if data.mid == session.video => {
                    last_media = now;
                    lipsync.video_arrived(
                        data.time.numer(),
                        data.network_time,
                        sender_report(&data),
                    );
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                    if !data.contiguous {
                        stats.gaps.fetch_add(1, Ordering::Relaxed);
                        jitter.on_loss(now);
                        debug!("WebRTC: packets lost; waiting for a keyframe");
                    }
                    let key = nal::is_keyframe(&data.data);
                    // Hold the last good picture rather than decode on a broken reference.
                    if let nal::Admit::Drop { request } = gate.admit(data.contiguous, key, now) {
                        if request && session.request_keyframe() {
                            stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                        }
                        continue;
                    }
                    let rtp = data.time.numer();
                    jitter.push(rtp, data.network_time, (rtp, data.data.clone()));
                }
                Event::PeerStats(p) => {
                    // RTCP gives no RTT to a receive-only peer unless the sender answers
                    // XR; ICE consent checks always do.
                    let rtt = p.rtt.or_else(|| {
                        p.selected_candidate_pair
                            .and_then(|c| c.current_round_trip_time)
                    });
                    if let Some(rtt) = rtt {
                        stats
                            .rtt_us
                            .store(rtt.as_micros() as u64, Ordering::Relaxed);
                    }
                }
                Event::MediaIngressStats(s) if s.mid == session.video => {
                    if let Some(rtt) = s.rtt {
                        stats
                            .rtt_us
                            .store(rtt.as_micros() as u64, Ordering::Relaxed);
                    }
                    stats.network_jitter_us.store(
                        u64::from(s.jitter) * 1_000_000 / u64::from(VIDEO_CLOCK_RATE),
                        Ordering::Relaxed,
                    );
                    if let Some(loss) = s.loss {
                        stats
                            .loss_permille
                            .store((f64::from(loss) * 1000.0) as u64, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
        }
        for r in jitter.pop_due(now) {
            let (rtp, data) = r.item;
            lipsync.video_released(rtp, r.due);
            let unit = AccessUnit {
                data,
                pts: r.due.saturating_duration_since(feed.epoch),
                show: r.show,
            };
            match feed.units.send_timeout(unit, QUEUE_PATIENCE) {
                Ok(()) => {}
                Err(SendTimeoutError::Timeout(_)) => {
                    // The decoder is behind: a dropped frame breaks the references after
                    // it, so start again from a keyframe.
                    gate.lost();
                }
                Err(SendTimeoutError::Disconnected(_)) => return Ok(None),
            }
        }
        let js = jitter.stats();
        stats
            .buffer_target_us
            .store(js.target.as_micros() as u64, Ordering::Relaxed);
        stats.late.store(js.late, Ordering::Relaxed);
        stats.hidden.store(js.hidden, Ordering::Relaxed);
        if ice_lost {
            return Ok(Some("ICE disconnected".into()));
        }
        if now - last_media > MEDIA_TIMEOUT {
            return Ok(Some(format!(
                "no media for {:.0} s",
                MEDIA_TIMEOUT.as_secs_f64()
            )));
        }
        let mut until = timeout.min(now + STOP_POLL);
        if let Some(due) = jitter.next_due() {
            until = until.min(due);
        }
        if let Err(e) = session.receive(until) {
            return Ok(Some(format!("the connection failed ({e})")));
        }
    }
}

/// A packet's stream's latest sender report: its NTP time and RTP timestamp.
fn sender_report(data: &MediaData) -> Option<(std::time::SystemTime, u64)> {
    data.last_sender_info
        .map(|s| (s.ntp_time, s.rtp_time.numer()))
}

/// The local address that routes toward the endpoint's host: the one address worth
/// offering as a host candidate (no packet is sent to find it).
fn local_ip_toward(url: &Url) -> Result<IpAddr, WhepError> {
    let unreachable = |reason: String| WhepError::Unreachable {
        url: Redacted::url(url),
        reason,
        source: None,
    };
    let addrs = url
        .socket_addrs(|| Some(443))
        .map_err(|e| unreachable(format!("cannot resolve the host ({e})")))?;
    let remote = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .ok_or_else(|| unreachable("the host has no address".into()))?;
    let unspecified = if remote.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    let probe = UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .map_err(|e| local("binding a UDP socket", e))?;
    probe
        .connect(remote)
        .map_err(|e| unreachable(format!("no route to the host ({e})")))?;
    probe
        .local_addr()
        .map(|a| a.ip())
        .map_err(|e| local("reading the UDP socket's address", e))
}

fn local(what: &str, e: std::io::Error) -> WhepError {
    WhepError::Local {
        reason: format!("{what}: {e}"),
        source: Some(Box::new(e)),
    }
}

fn rtc_error(e: str0m::RtcError) -> WhepError {
    WhepError::Local {
        reason: e.to_string(),
        source: Some(Box::new(e)),
    }
}
/// The codec names of an SDP's video sections (`a=rtpmap` lines), for the error that says
/// what a server offered instead of H.264.
fn video_codecs(sdp: &str) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut in_video = false;
    for line in sdp.lines() {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
        } else if in_video && let Some(map) = line.strip_prefix("a=rtpmap:") {
            let name = map.split_whitespace().nth(1).unwrap_or("");
            let name = name.split('/').next().unwrap_or("").to_string();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    if names.is_empty() {
        "no video codec".into()
    } else {
        names.join(", ")
    }
}
