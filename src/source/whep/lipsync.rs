//! Lip sync for WebRTC: places each Opus packet on the picture's playout timeline.
//!
//! Audio and video arrive as two RTP streams with unrelated timestamps. The sender's
//! RTCP sender reports tie each stream's RTP clock to one wall clock (RFC 3550 §6.4.1), so a
//! sound and a picture captured together have the same sender time. The picture's playout
//! time comes from the video jitter buffer (its target delay moves with the network); a
//! packet of sound is due when the picture of the same sender time is, so the sound shares
//! the video's delay and follows its changes.
//!
//! Before both streams have sent a report (the first second or so), sender time is
//! estimated from arrival: each stream's least transit over recent packets, the way the
//! jitter buffer finds its baseline. Both streams share one 5-tuple under BUNDLE, so their
//! least transits match within a packet's serialization.
//!
//! Kept free of sockets and threads so that it is tested on its own.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// RTP clock of Opus (RFC 7587: always 48 kHz, whatever the sampling rate).
pub const AUDIO_CLOCK_RATE: u32 = 48_000;
/// Packets whose transit the arrival estimate remembers (about 5 s of 20 ms audio or
/// 30 fps video): long enough to hold an uncongested packet, short enough to follow drift.
const TRANSIT_WINDOW: usize = 200;

/// One stream's RTP time against the sender's wall clock, from its latest sender report.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SenderClock {
    /// The report's NTP time, in seconds since the Unix epoch.
    ntp: f64,
    /// The report's RTP timestamp (32 bits: RTP's own width).
    rtp: u32,
    rate: f64,
}

impl SenderClock {
    /// Sender time of `rtp` (wrapping arithmetic: reports come every few seconds, far
    /// inside RTP's 2^31 ticks).
    fn time_of(&self, rtp: u64) -> f64 {
        let ticks = (rtp as u32).wrapping_sub(self.rtp) as i32;
        self.ntp + f64::from(ticks) / self.rate
    }
}

/// One stream's sender time estimated from arrival: media time plus the least transit.
#[derive(Debug)]
struct Arrival {
    rate: f64,
    /// The receiver's time zero, shared by both streams.
    zero: Instant,
    transits: VecDeque<f64>,
    least: f64,
}

impl Arrival {
    fn new(rate: u32, zero: Instant) -> Self {
        Arrival {
            rate: f64::from(rate),
            zero,
            transits: VecDeque::new(),
            least: f64::INFINITY,
        }
    }

    fn media(&self, rtp: u64) -> f64 {
        rtp as f64 / self.rate
    }

    fn arrived(&mut self, rtp: u64, at: Instant) {
        let arrival = at.saturating_duration_since(self.zero).as_secs_f64();
        if self.transits.len() == TRANSIT_WINDOW {
            self.transits.pop_front();
        }
        self.transits.push_back(arrival - self.media(rtp));
        self.least = self.transits.iter().copied().fold(f64::INFINITY, f64::min);
    }

    fn time_of(&self, rtp: u64) -> Option<f64> {
        self.least.is_finite().then(|| self.least + self.media(rtp))
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct LipSync {
    video_report: Option<SenderClock>,
    audio_report: Option<SenderClock>,
    video_arrival: Arrival,
    audio_arrival: Arrival,
    /// The newest released picture: its extended RTP timestamp and when it was due.
    shown: Option<(u64, Instant)>,
}

impl LipSync {
    /// Lip sync for one session; `zero` is any instant before the first packet.
    pub fn new(video_clock_rate: u32, zero: Instant) -> Self {
        LipSync {
            video_report: None,
            audio_report: None,
            video_arrival: Arrival::new(video_clock_rate, zero),
            audio_arrival: Arrival::new(AUDIO_CLOCK_RATE, zero),
            shown: None,
        }
    }

    /// A video packet arrived (`rtp`: extended timestamp), with the stream's latest sender
    /// report if there is one (its NTP time and RTP timestamp).
    pub fn video_arrived(&mut self, rtp: u64, at: Instant, report: Option<(SystemTime, u64)>) {
        self.video_arrival.arrived(rtp, at);
        if let Some(r) = report.and_then(|r| clock(r, self.video_arrival.rate)) {
            self.video_report = Some(r);
        }
    }

    /// An audio packet arrived; as [`LipSync::video_arrived`].
    pub fn audio_arrived(&mut self, rtp: u64, at: Instant, report: Option<(SystemTime, u64)>) {
        self.audio_arrival.arrived(rtp, at);
        if let Some(r) = report.and_then(|r| clock(r, self.audio_arrival.rate)) {
            self.audio_report = Some(r);
        }
    }

    /// The jitter buffer released the picture with this RTP timestamp, due at `due`.
    pub fn video_released(&mut self, rtp: u64, due: Instant) {
        self.shown = Some((rtp, due));
    }

    /// True once both streams have sent a sender report: sync is the sender's, not an
    /// estimate from arrival.
    pub fn reported(&self) -> bool {
        self.video_report.is_some() && self.audio_report.is_some()
    }

    /// When the sound at `rtp` is due: when the picture captured with it is. `None` before
    /// the first picture was released.
    pub fn audio_due(&self, rtp: u64) -> Option<Instant> {
        let (video_rtp, video_due) = self.shown?;
        let (audio, video) = match (self.audio_report, self.video_report) {
            (Some(a), Some(v)) => (a.time_of(rtp), v.time_of(video_rtp)),
            _ => (
                self.audio_arrival.time_of(rtp)?,
                self.video_arrival.time_of(video_rtp)?,
            ),
        };
        let ahead = audio - video;
        if ahead >= 0.0 {
            video_due.checked_add(Duration::from_secs_f64(ahead))
        } else {
            video_due.checked_sub(Duration::from_secs_f64(-ahead))
        }
    }
}

fn clock((ntp, rtp): (SystemTime, u64), rate: f64) -> Option<SenderClock> {
    let ntp = ntp.duration_since(UNIX_EPOCH).ok()?.as_secs_f64();
    Some(SenderClock {
        ntp,
        rtp: rtp as u32,
        rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: u32 = 90_000;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Sound and picture captured together from `t` ms of the sender's clock; the RTP
    /// streams start at unrelated offsets.
    fn rtp_video(t_ms: u64) -> u64 {
        1_000_000 + t_ms * 90
    }
    fn rtp_audio(t_ms: u64) -> u64 {
        7_777 + t_ms * 48
    }

    #[test]
    fn sender_reports_put_the_sound_beside_the_picture_it_was_captured_with() {
        let zero = Instant::now();
        let mut sync = LipSync::new(VIDEO, zero);
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        // The audio path is 120 ms slower than the video one: arrival alone would be wrong.
        sync.video_arrived(rtp_video(0), zero + ms(10), Some((wall, rtp_video(0))));
        sync.audio_arrived(
            rtp_audio(0),
            zero + ms(130),
            Some((wall + ms(500), rtp_audio(500))),
        );
        assert!(sync.reported());
        assert_eq!(
            sync.audio_due(rtp_audio(0)),
            None,
            "no picture released yet"
        );
        // The picture captured at 1000 ms is due at zero + 1300 ms (the jitter buffer's).
        sync.video_released(rtp_video(1000), zero + ms(1300));
        let due = |sync: &LipSync, t| sync.audio_due(rtp_audio(t)).unwrap();
        let near =
            |a: Instant, b: Instant| a.max(b).duration_since(a.min(b)) < Duration::from_micros(50);
        assert!(near(due(&sync, 1000), zero + ms(1300)));
        assert!(near(due(&sync, 1040), zero + ms(1340)));
        assert!(near(due(&sync, 960), zero + ms(1260)));
        // The jitter buffer raises its delay by 20 ms: the sound follows.
        sync.video_released(rtp_video(1033), zero + ms(1353));
        assert!(near(due(&sync, 1033), zero + ms(1353)));
    }

    #[test]
    fn before_the_reports_the_least_transit_of_each_stream_lines_them_up() {
        let zero = Instant::now();
        let mut sync = LipSync::new(VIDEO, zero);
        // Both paths take 30 ms at best; some packets are later.
        for (t, late) in [(0, 5), (33, 0), (66, 12), (100, 3)] {
            sync.video_arrived(rtp_video(t), zero + ms(t + 30 + late), None);
        }
        for (t, late) in [(0, 9), (20, 0), (40, 30), (60, 2)] {
            sync.audio_arrived(rtp_audio(t), zero + ms(t + 30 + late), None);
        }
        assert!(!sync.reported());
        sync.video_released(rtp_video(100), zero + ms(400));
        let due = sync.audio_due(rtp_audio(60)).unwrap();
        assert!(
            (due - zero).abs_diff(ms(360)) < Duration::from_micros(100),
            "{:?}",
            due - zero
        );
    }

    #[test]
    fn rtp_timestamps_that_wrap_still_map() {
        let report = SenderClock {
            ntp: 100.0,
            rtp: u32::MAX - 479,
            rate: 48_000.0,
        };
        // 480 ticks later wraps to 0 (and to 2^32 in the extended counter).
        assert!((report.time_of(1 << 32) - 100.01).abs() < 1e-9);
        assert!((report.time_of(u64::from(u32::MAX - 959)) - 99.99).abs() < 1e-9);
    }
}
