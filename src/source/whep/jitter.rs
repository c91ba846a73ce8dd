//! The adaptive jitter buffer for WebRTC video: decides when each received frame is due,
//! from its RTP timestamp and the network's measured jitter. Kept free of sockets and
//! threads so its behaviour is tested on its own.
//!
//! Each frame's playout time is its media time, mapped to wall time by the smallest
//! transit seen lately, plus a target delay. The target sits just above the measured
//! interarrival jitter (RFC 3550's estimator), grows when a frame arrives after its playout
//! time or packets are lost, and shrinks back after a clean spell. Frames are released in
//! order and never in a burst: when several are due at once, all of them go to the decoder
//! (H.264 frames depend on each other) but only the newest is marked for showing.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// RTP clock of H.264 video (RFC 6184).
pub const VIDEO_CLOCK_RATE: u32 = 90_000;

/// The target never drops below this (scheduling and decode need a little room).
const MIN_TARGET: Duration = Duration::from_millis(10);
/// Nor goes beyond this: later than that the picture is no longer "live".
const MAX_TARGET: Duration = Duration::from_millis(1000);
/// Jitter is multiplied by this for the target (about three deviations).
const JITTER_MARGIN: f64 = 3.0;
/// What a late frame or a loss adds to the target.
const GROW_STEP: Duration = Duration::from_millis(20);
/// A clean spell this long takes back `SHRINK_STEP` of what losses added.
const CLEAN_SPELL: Duration = Duration::from_secs(2);
const SHRINK_STEP: Duration = Duration::from_millis(10);
/// The transit baseline is the smallest transit over this many frames (clock drift and
/// route changes move it; a window follows them).
const TRANSIT_WINDOW: usize = 150;
/// Frames held at most; beyond it the oldest is released at once (a stalled clock).
const MAX_HELD: usize = 120;

/// One frame waiting for its playout time.
#[derive(Debug)]
pub struct Held<T> {
    /// When it is due.
    pub due: Instant,
    /// The payload (an H.264 access unit).
    pub item: T,
}

/// A frame leaving the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Released<T> {
    /// When it was due: the presentation time the renderer paces on.
    pub due: Instant,
    /// False when a newer frame was due at the same moment: decode it, don't show it.
    pub show: bool,
    /// The payload.
    pub item: T,
}

/// Figures for the status line and `--stats-json`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Measured interarrival jitter.
    pub jitter: Duration,
    /// The delay the buffer aims for now.
    pub target: Duration,
    /// Frames that arrived after their playout time.
    pub late: u64,
    /// Frames decoded but not shown because a newer one was due at the same time.
    pub hidden: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct JitterBuffer<T> {
    clock_rate: f64,
    /// The first frame's arrival and extended RTP timestamp: time zero of this session.
    origin: Option<(Instant, u64)>,
    last_rtp: Option<(u64, Instant)>,
    /// Transit (arrival minus media time, from `origin`) of recent frames, in seconds.
    transits: VecDeque<f64>,
    jitter_s: f64,
    extra: Duration,
    last_trouble: Option<Instant>,
    last_shrink: Option<Instant>,
    last_due: Option<Instant>,
    held: VecDeque<Held<T>>,
    stats: JitterStats,
}

impl<T> JitterBuffer<T> {
    /// An empty buffer for a stream with this RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        JitterBuffer {
            clock_rate: f64::from(clock_rate.max(1)),
            origin: None,
            last_rtp: None,
            transits: VecDeque::new(),
            jitter_s: 0.0,
            extra: Duration::ZERO,
            last_trouble: None,
            last_shrink: None,
            last_due: None,
            held: VecDeque::new(),
            stats: JitterStats::default(),
        }
    }

    /// The current figures.
    pub fn stats(&self) -> JitterStats {
        JitterStats {
            jitter: Duration::from_secs_f64(self.jitter_s),
            target: self.target(),
            ..self.stats
        }
    }

    /// The delay the buffer aims for: just above measured jitter, plus what recent late
    /// frames and losses added.
    pub fn target(&self) -> Duration {
        let from_jitter = Duration::from_secs_f64((self.jitter_s * JITTER_MARGIN).min(10.0));
        (from_jitter + self.extra).clamp(MIN_TARGET, MAX_TARGET)
    }

    /// When the next held frame is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.front().map(|h| h.due)
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Packets were lost (the depacketizer saw a gap): keep more margin for a while.
    pub fn on_loss(&mut self, now: Instant) {
        self.grow(now);
    }

    fn grow(&mut self, now: Instant) {
        self.extra = (self.extra + GROW_STEP).min(MAX_TARGET);
        self.last_trouble = Some(now);
    }

    /// Adds a frame with its extended RTP timestamp, received at `arrival`.
    pub fn push(&mut self, rtp: u64, arrival: Instant, item: T) {
        let (t0, rtp0) = *self.origin.get_or_insert((arrival, rtp));
        // Media time from the session's first frame. A timestamp before it (a reordered or
        // bogus one) counts as time zero rather than underflowing.
        let media_s = rtp.saturating_sub(rtp0) as f64 / self.clock_rate;
        let arrival_s = arrival.saturating_duration_since(t0).as_secs_f64();
        if let Some((prev_rtp, prev_arrival)) = self.last_rtp {
            // RFC 3550 6.4.1: the change in transit between consecutive frames.
            let d_arrival = arrival
                .saturating_duration_since(prev_arrival)
                .as_secs_f64();
            let d_media = (rtp as f64 - prev_rtp as f64) / self.clock_rate;
            let d = (d_arrival - d_media).abs().min(1.0);
            self.jitter_s += (d - self.jitter_s) / 16.0;
        }
        self.last_rtp = Some((rtp, arrival));
        self.transits.push_back(arrival_s - media_s);
        if self.transits.len() > TRANSIT_WINDOW {
            self.transits.pop_front();
        }
        let base = self.transits.iter().copied().fold(f64::INFINITY, f64::min);
        let playout_s = (media_s + base).max(0.0);
        let mut due = t0 + Duration::from_secs_f64(playout_s.min(1e6)) + self.target();
        if due < arrival {
            // Late: play it now, and keep more margin from here on.
            self.stats.late += 1;
            self.grow(arrival);
            due = arrival;
        }
        // A timestamp far ahead (a bogus one) must not hold everything behind it.
        due = due.min(arrival + MAX_TARGET);
        // Never earlier than what was released before: frames leave in order.
        if let Some(last) = self.last_due {
            due = due.max(last);
        }
        if let Some(back) = self.held.back() {
            due = due.max(back.due);
        }
        self.held.push_back(Held { due, item });
    }

    /// Takes every frame due at `now`, in order. When several are due together only the
    /// newest is to be shown: catching up is by not showing, never by a burst.
    pub fn pop_due(&mut self, now: Instant) -> Vec<Released<T>> {
        self.relax(now);
        let mut out = Vec::new();
        while let Some(front) = self.held.front() {
            let overfull = self.held.len() > MAX_HELD;
            if front.due > now && !overfull {
                break;
            }
            let Some(h) = self.held.pop_front() else {
                break;
            };
            self.last_due = Some(h.due.min(now));
            out.push(Released {
                due: h.due.min(now),
                show: true,
                item: h.item,
            });
        }
        let n = out.len();
        for r in out.iter_mut().take(n.saturating_sub(1)) {
            r.show = false;
            self.stats.hidden += 1;
        }
        out
    }

    /// After a clean spell, takes back some of the margin losses added.
    fn relax(&mut self, now: Instant) {
        let clean_since = match (self.last_trouble, self.last_shrink) {
            (Some(t), Some(s)) => t.max(s),
            (Some(t), None) => t,
            _ => return,
        };
        if self.extra > Duration::ZERO && now.saturating_duration_since(clean_since) >= CLEAN_SPELL
        {
            self.extra = self.extra.saturating_sub(SHRINK_STEP);
            self.last_shrink = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = 3000; // 30 fps at 90 kHz
    const STEP: Duration = Duration::from_micros(33_333);

    #[test]
    fn evenly_spaced_frames_play_at_the_minimum_delay() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(VIDEO_CLOCK_RATE);
        for i in 0..30u32 {
            let arrival = t0 + STEP * i;
            jb.push(u64::from(i) * FRAME, arrival, i);
            assert!(jb.pop_due(arrival).is_empty(), "nothing is due on arrival");
            let out = jb.pop_due(arrival + MIN_TARGET + Duration::from_millis(1));
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].item, i);
            assert!(out[0].show);
        }
        assert_eq!(jb.stats().late, 0);
        assert!(jb.target() < Duration::from_millis(15), "{:?}", jb.target());
    }

    #[test]
    fn jittery_arrivals_raise_the_target_above_the_jitter_and_keep_the_cadence() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(VIDEO_CLOCK_RATE);
        // Arrivals wobble by up to +-15 ms around a 30 fps cadence.
        let wobble = [0i64, 15, -10, 5, -15, 12, -3, 8, -12, 14];
        let mut released = Vec::new();
        let mut now = t0;
        for i in 0..300u32 {
            let w = wobble[i as usize % wobble.len()] + 15;
            let arrival = t0 + STEP * i + Duration::from_millis(w as u64);
            while now < arrival {
                released.extend(jb.pop_due(now).into_iter().map(|r| (r.due, r.item)));
                now += Duration::from_millis(1);
            }
            jb.push(u64::from(i) * FRAME, arrival, i);
        }
        let target = jb.target();
        assert!(target > jb.stats().jitter, "target {target:?} above jitter");
        assert!(target < Duration::from_millis(200), "{target:?}");
        // In order, each once.
        let items: Vec<u32> = released.iter().map(|r| r.1).collect();
        assert!(items.windows(2).all(|w| w[1] == w[0] + 1));
        // Once settled, released frames keep the source's cadence within a few ms.
        let late: Vec<Duration> = released[150..]
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .collect();
        assert!(
            late.iter()
                .all(|d| *d > Duration::from_millis(20) && *d < Duration::from_millis(47)),
            "{late:?}"
        );
    }

    #[test]
    fn losses_grow_the_target_and_a_clean_spell_shrinks_it_back() {
        let t0 = Instant::now();
        let mut jb: JitterBuffer<u32> = JitterBuffer::new(VIDEO_CLOCK_RATE);
        let before = jb.target();
        jb.on_loss(t0);
        jb.on_loss(t0);
        let grown = jb.target();
        assert!(grown >= before + Duration::from_millis(30), "{grown:?}");
        jb.pop_due(t0 + Duration::from_secs(1));
        assert_eq!(jb.target(), grown, "not yet clean for long");
        for s in 2..12 {
            jb.pop_due(t0 + Duration::from_secs(s * 2));
        }
        assert_eq!(jb.target(), before);
    }

    #[test]
    fn a_burst_after_a_stall_is_decoded_but_only_the_newest_shown() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(VIDEO_CLOCK_RATE);
        jb.push(0, t0, 0u32);
        assert_eq!(jb.pop_due(t0 + Duration::from_millis(20)).len(), 1);
        // Frames 1..=5 are held up in the network and arrive together, 200 ms late.
        let arrival = t0 + Duration::from_millis(200);
        for i in 1..=5u32 {
            jb.push(u64::from(i) * FRAME, arrival, i);
        }
        // Those already late go at once, only the newest of them shown; the margin grows,
        // so the rest are spread out again rather than shown in a burst.
        let first = jb.pop_due(arrival);
        assert!(first.len() >= 2, "{first:?}");
        assert_eq!(first.iter().filter(|r| r.show).count(), 1);
        assert!(first.last().unwrap().show);
        let rest = jb.pop_due(arrival + Duration::from_millis(500));
        let items: Vec<u32> = first.iter().chain(&rest).map(|r| r.item).collect();
        assert_eq!(items, [1, 2, 3, 4, 5]);
        let stats = jb.stats();
        assert!(stats.late >= 2, "{stats:?}");
        assert!(stats.hidden >= 1, "{stats:?}");
        assert!(stats.target >= Duration::from_millis(40), "{stats:?}");
    }

    #[test]
    fn nonsense_timestamps_neither_panic_nor_reorder() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(VIDEO_CLOCK_RATE);
        for (i, rtp) in [u64::MAX, 0, 5, u64::MAX / 2, 1].into_iter().enumerate() {
            jb.push(rtp, t0 + Duration::from_millis(i as u64), i);
        }
        let out = jb.pop_due(t0 + Duration::from_secs(3600 * 24 * 366));
        assert_eq!(
            out.iter().map(|r| r.item).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert!(out.windows(2).all(|w| w[0].due <= w[1].due));
    }
}
