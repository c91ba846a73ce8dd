//! Presentation pacing: which decoded frame is on screen now.
//!
//! Frames leave the decoder in bursts (a whole HLS segment decodes in a fraction of its
//! duration), so showing them as they arrive would play a segment at many times its speed.
//! The clock maps stream time to wall time from an anchor and releases each frame when its
//! time comes. Kept free of Bevy so it can be tested on its own.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use crate::decode::VideoFrame;

/// A frame later than this, after the queue ran dry, means the source stalled: the clock
/// re-anchors on it instead of skipping to catch up.
const LATE_TOLERANCE: Duration = Duration::from_millis(50);
/// A jump in stream time larger than this is a discontinuity, not a late frame.
const MAX_PTS_JUMP: Duration = Duration::from_secs(5);

/// Frame duration assumed until two frames have been seen, and its sane bounds.
const DEFAULT_STEP: Duration = Duration::from_millis(33);
const MIN_STEP: Duration = Duration::from_millis(5);
const MAX_STEP: Duration = Duration::from_millis(200);

/// How the clock steers the distance to the live edge (live HLS only).
#[derive(Debug, Clone, Copy)]
pub struct LatencyPolicy {
    /// Target latency behind the live edge: about one segment plus a margin, or `--latency`.
    pub base: Duration,
    /// Added to the target at each stall (Media3 adds 500 ms per rebuffer).
    pub stall_step: Duration,
    /// The most stalls may add.
    pub max_extra: Duration,
    /// Playback clean for this long lowers the target by `relax_step`.
    pub relax_after: Duration,
    /// How much one clean period takes back.
    pub relax_step: Duration,
    /// Further behind than target + this: catch up by dropping frames, not by speed.
    pub catch_up_beyond: Duration,
    /// For this long after the first frame, the live edge is still being found (reloads
    /// learn when the origin publishes within a few segments, and the edge can jump ahead
    /// by up to a segment): an error beyond `settle_catch_up` is caught up by dropping
    /// frames at once, where speed steering would take a minute.
    pub settle: Duration,
    /// The error that drops frames while settling.
    pub settle_catch_up: Duration,
}

impl LatencyPolicy {
    /// The default for a stream with segments of `segment` duration, or the user's target.
    pub fn for_segments(segment: Duration, user_target: Option<Duration>) -> Self {
        LatencyPolicy {
            base: user_target.unwrap_or(segment + Duration::from_millis(500)),
            stall_step: Duration::from_millis(500),
            max_extra: Duration::from_secs(6),
            relax_after: Duration::from_secs(20),
            relax_step: Duration::from_millis(250),
            catch_up_beyond: segment.max(Duration::from_secs(1)),
            settle: segment * 4,
            settle_catch_up: Duration::from_secs_f64(DEADBAND * 2.0),
        }
    }
}

/// Playback speed while steering toward the target (hls.js and Media3 stay within a few
/// percent so the change is invisible).
const SLOW: f64 = 0.97;
const FAST: f64 = 1.03;
/// Steering starts beyond this error and stops within `DEADBAND / 3`.
const DEADBAND: f64 = 0.15;

/// What one tick of the clock decided.
#[derive(Debug, Default)]
pub struct Tick {
    /// The frame to show now, if a new one is due.
    pub show: Option<VideoFrame>,
    /// Frames skipped: due in the same tick as a newer one, or dropped to catch up.
    pub skipped: u64,
    /// How late the source delivered, when it stalled and the clock re-anchored
    /// (latency grew by this much).
    pub stall: Option<Duration>,
    /// True when this tick started dropping frames to catch up with the live edge.
    pub catch_up: bool,
}

/// Maps stream time to wall time and picks the frame due at each tick; on live streams it
/// also steers the latency toward a target with small speed changes, raises the target
/// after stalls and lowers it again after clean playback.
#[derive(Debug)]
pub struct PresentationClock {
    anchor: Option<(Instant, Duration)>,
    pending: Option<(VideoFrame, Instant)>,
    last_pts: Option<Duration>,
    last_due: Option<Instant>,
    step: Option<Duration>,
    starved: bool,
    rate: f64,
    policy: Option<LatencyPolicy>,
    target: Duration,
    last_change: Option<Instant>,
    /// When the first frame was shown.
    started: Option<Instant>,
    /// True once the source stalled, or a load of the edge was retried: what it delayed
    /// is steered away by speed, not dropped.
    stalled: bool,
    /// The live edge at the last steer, and when.
    last_edge: Option<(Instant, Duration)>,
    /// How far the edge estimate has jumped ahead of the passing time (corrections not
    /// yet caught up).
    edge_jumps: Duration,
    latency: Option<Duration>,
    skip_before: Option<Duration>,
    release: Release,
}

/// When a frame taken from the queue is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// At its timestamp, mapped to wall time (and steered, with a latency policy).
    Scheduled,
    /// As it arrives: the source already released it at its time.
    OnArrival,
    /// Every frame, one per tick, whatever the time (offline rendering).
    EveryFrame,
}

impl Default for PresentationClock {
    fn default() -> Self {
        Self::new(None)
    }
}

impl PresentationClock {
    /// A clock; with a policy it steers latency (live HLS), without it only paces.
    pub fn new(policy: Option<LatencyPolicy>) -> Self {
        PresentationClock {
            anchor: None,
            pending: None,
            last_pts: None,
            last_due: None,
            step: None,
            starved: false,
            rate: 1.0,
            target: policy.map(|p| p.base).unwrap_or_default(),
            policy,
            last_change: None,
            started: None,
            stalled: false,
            last_edge: None,
            edge_jumps: Duration::ZERO,
            latency: None,
            skip_before: None,
            release: Release::Scheduled,
        }
    }

    /// A clock for offline rendering (a finite input into files): each tick shows the next
    /// frame in order, never skips one, and never waits for its time. The renderer's
    /// speed sets the pace.
    pub fn every_frame() -> Self {
        PresentationClock {
            release: Release::EveryFrame,
            ..Self::new(None)
        }
    }

    /// A clock for a source that paces its frames itself (WebRTC's jitter buffer releases
    /// each one at its playout time): each frame shows at the first tick after it arrives,
    /// only the newest when several wait. Holding frames to re-derive their schedule here
    /// would only add the first frame's delay to every later one.
    pub fn on_arrival() -> Self {
        PresentationClock {
            release: Release::OnArrival,
            ..Self::new(None)
        }
    }

    /// True when a frame was taken from the queue but is not due yet.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// When the frame taken from the queue is due; `None` while waiting for the decoder.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, due)| *due)
    }

    /// Latency behind the live edge at the last tick, when the stream has one.
    pub fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// The latency the clock steers toward now.
    pub fn target(&self) -> Option<Duration> {
        self.policy.map(|_| self.target)
    }

    /// Current playback speed (1.0, or a few percent off while steering).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn due(&self, pts: Duration) -> Option<Instant> {
        let (t0, p0) = self.anchor?;
        let last = self.last_pts?;
        if pts < p0 || pts > last + MAX_PTS_JUMP {
            return None;
        }
        Some(t0 + (pts - p0).div_f64(self.rate))
    }

    /// The source retried a load that finds the live edge (a transient error): the edge
    /// was seen late by the retry, and its later corrections are the fault's delay, which
    /// is steered away by speed, like a stall's, never caught up by dropping frames.
    pub fn edge_load_retried(&mut self) {
        self.stalled = true;
    }

    /// Steers toward the target given where the live edge is now, in stream time.
    fn steer(&mut self, now: Instant, edge: Duration) {
        let (Some(policy), Some(shown)) = (self.policy, self.last_pts) else {
            return;
        };
        let latency = edge.saturating_sub(shown);
        self.latency = Some(latency);
        // Clean for a while: take some of the stall margin back.
        let since = self.last_change.map(|t| now - t).unwrap_or_default();
        if self.target > policy.base && since >= policy.relax_after {
            self.target = self
                .target
                .saturating_sub(policy.relax_step)
                .max(policy.base);
            self.last_change = Some(now);
        }
        let error = latency.as_secs_f64() - self.target.as_secs_f64();
        // Forward corrections of the edge estimate: it moved further than time did.
        if let Some((then, before)) = self.last_edge
            && let Some(moved) = edge.checked_sub(before + (now - then))
        {
            self.edge_jumps += moved;
        }
        self.last_edge = Some((now, edge));
        // Only the edge's own corrections are caught up at once: latency that grows while
        // the source is late is a stall (it raises the target), and the frames it delayed
        // are not to be dropped.
        let settling = !self.stalled
            && self.edge_jumps > policy.settle_catch_up
            && self.started.is_some_and(|t| now - t < policy.settle);
        let beyond = if settling {
            policy.settle_catch_up
        } else {
            policy.catch_up_beyond
        };
        // Never while the queue is dry: the source is late (a stall in progress, handled
        // when its frames come), and there is nothing to drop.
        if error > beyond.as_secs_f64() && self.skip_before.is_none() && !self.starved {
            self.skip_before = Some(edge.saturating_sub(self.target));
            self.edge_jumps = Duration::ZERO;
            return;
        }
        let rate = if error > DEADBAND {
            FAST
        } else if error < -DEADBAND {
            SLOW
        } else if error.abs() < DEADBAND / 3.0 {
            1.0
        } else {
            self.rate
        };
        if rate != self.rate {
            // Re-anchor at the frame on screen so the new speed applies from here.
            if let (Some(t), Some(p)) = (self.last_due, self.last_pts) {
                self.anchor = Some((t, p));
            }
            self.rate = rate;
            if let Some((frame, _)) = self.pending.take() {
                let due = self.due(frame.pts).unwrap_or(now);
                self.pending = Some((frame, due));
            }
        }
    }

    /// Takes every frame that is due at `now`, shows the newest of them and skips the rest.
    /// `edge` is the live edge in stream time now, for live streams.
    pub fn tick(
        &mut self,
        now: Instant,
        frames: &Receiver<VideoFrame>,
        edge: Option<Duration>,
    ) -> Tick {
        let mut tick = Tick::default();
        if self.release == Release::EveryFrame {
            tick.show = self
                .pending
                .take()
                .map(|(f, _)| f)
                .or_else(|| frames.try_recv().ok());
            if let Some(f) = &tick.show {
                self.last_pts = Some(f.pts);
                self.last_due = Some(now);
            }
            return tick;
        }
        if self.release == Release::OnArrival {
            while let Ok(frame) = frames.try_recv() {
                self.last_pts = Some(frame.pts);
                self.last_due = Some(now);
                if tick.show.replace(frame).is_some() {
                    tick.skipped += 1;
                }
            }
            return tick;
        }
        if let Some(edge) = edge {
            self.steer(now, edge);
        }
        loop {
            let frame = match self.pending.take() {
                Some((f, _)) => f,
                None => match frames.try_recv() {
                    Ok(f) => f,
                    Err(_) => {
                        self.starved = true;
                        break;
                    }
                },
            };
            if let Some(until) = self.skip_before {
                if frame.pts < until {
                    // Catching up: drop without showing, as fast as the decoder delivers.
                    if !tick.catch_up {
                        tick.catch_up = true;
                    }
                    tick.skipped += 1;
                    self.last_pts = Some(frame.pts);
                    continue;
                }
                // Caught up: this frame starts the timeline again, now.
                self.skip_before = None;
                self.anchor = Some((now, frame.pts));
                self.last_pts = Some(frame.pts);
            }
            let due = match self.due(frame.pts) {
                Some(due) => due,
                None => {
                    // First frame, or a discontinuity: this frame starts a new timeline,
                    // one frame after the previous one so that one still gets its slot.
                    let start = match self.last_due {
                        Some(last) => (last + self.step.unwrap_or(DEFAULT_STEP)).max(now),
                        None => now,
                    };
                    self.anchor = Some((start, frame.pts));
                    start
                }
            };
            if due > now {
                self.pending = Some((frame, due));
                break;
            }
            let late = now - due;
            let step = self.step.unwrap_or(DEFAULT_STEP);
            if self.starved && tick.show.is_none() && (late > LATE_TOLERANCE || late >= step) {
                // The source delivered late: play on from here rather than rush to catch up
                // (which would skip the frames that are already due).
                self.anchor = Some((now, frame.pts));
                if late > LATE_TOLERANCE {
                    // A real stall, not a hiccup (a decoder holding its last frames until
                    // the next segment arrives): keep more margin from now on.
                    tick.stall = Some(late);
                    self.stalled = true;
                    if let Some(p) = self.policy
                        && self.last_pts.is_some()
                    {
                        self.target = (self.target + p.stall_step).min(p.base + p.max_extra);
                        self.last_change = Some(now);
                    }
                }
            }
            self.starved = false;
            if let Some(last) = self.last_pts
                && frame.pts > last
            {
                self.step = Some((frame.pts - last).clamp(MIN_STEP, MAX_STEP));
            }
            self.last_pts = Some(frame.pts);
            self.last_due = Some(due);
            if self.last_change.is_none() {
                self.last_change = Some(now);
            }
            self.started.get_or_insert(now);
            if tick.show.replace(frame).is_some() {
                tick.skipped += 1;
            }
        }
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::unbounded;

    fn frame(index: u64, ms: u64) -> VideoFrame {
        VideoFrame {
            index,
            pts: Duration::from_millis(ms),
            width: 2,
            height: 2,
            picture: crate::decode::frame::Picture::Rgba(vec![0; 16]),
        }
    }

    #[test]
    fn a_burst_of_frames_is_released_at_their_timestamps() {
        let (tx, rx) = unbounded();
        for i in 0..10 {
            tx.send(frame(i, i * 40)).unwrap();
        }
        let t0 = Instant::now();
        let mut clock = PresentationClock::default();
        assert_eq!(clock.tick(t0, &rx, None).show.unwrap().index, 0);
        assert!(
            clock
                .tick(t0 + Duration::from_millis(39), &rx, None)
                .show
                .is_none()
        );
        assert_eq!(
            clock
                .tick(t0 + Duration::from_millis(40), &rx, None)
                .show
                .unwrap()
                .index,
            1
        );
        // A slow renderer that wakes late shows the newest due frame and counts the rest.
        let t = clock.tick(t0 + Duration::from_millis(170), &rx, None);
        assert_eq!(t.show.unwrap().index, 4);
        assert_eq!(t.skipped, 2);
        assert!(t.stall.is_none());
    }

    #[test]
    fn a_short_hiccup_is_not_a_stall_and_skips_nothing() {
        let (tx, rx) = unbounded();
        tx.send(frame(0, 0)).unwrap();
        let t0 = Instant::now();
        let mut clock = PresentationClock::default();
        assert!(clock.tick(t0, &rx, None).show.is_some());
        assert!(
            clock
                .tick(t0 + Duration::from_millis(30), &rx, None)
                .show
                .is_none()
        );
        // The decoder held frames 1 and 2 back (waiting for the next segment) and hands
        // them over 45 ms late: both were due, yet neither is skipped.
        tx.send(frame(1, 40)).unwrap();
        tx.send(frame(2, 80)).unwrap();
        let t = clock.tick(t0 + Duration::from_millis(85), &rx, None);
        assert_eq!(t.show.unwrap().index, 1);
        assert_eq!((t.skipped, t.stall), (0, None), "a hiccup, not a stall");
        let t = clock.tick(t0 + Duration::from_millis(125), &rx, None);
        assert_eq!(t.show.unwrap().index, 2);
    }

    #[test]
    fn a_stalled_source_re_anchors_instead_of_bursting() {
        let (tx, rx) = unbounded();
        tx.send(frame(0, 0)).unwrap();
        let t0 = Instant::now();
        let mut clock = PresentationClock::default();
        assert!(clock.tick(t0, &rx, None).show.is_some());
        // The queue runs dry; the next segment arrives 1 s late, all at once.
        assert!(
            clock
                .tick(t0 + Duration::from_millis(100), &rx, None)
                .show
                .is_none()
        );
        for i in 1..5 {
            tx.send(frame(i, i * 40)).unwrap();
        }
        let late = t0 + Duration::from_millis(1040);
        let t = clock.tick(late, &rx, None);
        assert_eq!(t.stall, Some(Duration::from_millis(1000)));
        assert_eq!(
            t.show.unwrap().index,
            1,
            "the first late frame is shown, not skipped"
        );
        assert!(
            clock
                .tick(late + Duration::from_millis(20), &rx, None)
                .show
                .is_none()
        );
        assert_eq!(
            clock
                .tick(late + Duration::from_millis(40), &rx, None)
                .show
                .unwrap()
                .index,
            2
        );
    }

    #[test]
    fn a_timestamp_jump_starts_a_new_timeline() {
        let (tx, rx) = unbounded();
        tx.send(frame(0, 0)).unwrap();
        tx.send(frame(1, 60_000)).unwrap();
        let t0 = Instant::now();
        let mut clock = PresentationClock::default();
        let first = clock.tick(t0, &rx, None);
        assert_eq!(
            first.show.unwrap().index,
            0,
            "the frame before the jump keeps its slot"
        );
        assert_eq!(first.skipped, 0);
        let t = clock.tick(t0 + Duration::from_millis(40), &rx, None);
        assert_eq!(t.show.unwrap().index, 1, "not held back for a minute");
    }

    fn live_policy() -> LatencyPolicy {
        LatencyPolicy::for_segments(Duration::from_secs(2), None)
    }

    /// A live clock with `frames` frames 40 ms apart queued, the first shown at `t0` with
    /// the edge at `edge`.
    fn live_clock(
        frames: u64,
        t0: Instant,
        edge: Duration,
    ) -> (PresentationClock, Receiver<VideoFrame>) {
        let (tx, rx) = unbounded();
        for i in 0..frames {
            tx.send(frame(i, i * 40)).unwrap();
        }
        let mut clock = PresentationClock::new(Some(live_policy()));
        clock.tick(t0, &rx, Some(edge));
        (clock, rx)
    }

    #[test]
    fn steers_toward_the_target_with_small_speed_changes() {
        let (tx, rx) = unbounded();
        for i in 0..400 {
            tx.send(frame(i, i * 40)).unwrap();
        }
        let t0 = Instant::now();
        let mut clock = PresentationClock::new(Some(live_policy()));
        assert_eq!(clock.target(), Some(Duration::from_millis(2500)));
        clock.tick(t0, &rx, Some(Duration::from_secs(2)));
        // 2.0 s behind a 2.5 s target: slow down a little, never stop.
        clock.tick(
            t0 + Duration::from_millis(40),
            &rx,
            Some(Duration::from_millis(2040)),
        );
        assert_eq!(clock.rate(), SLOW);
        assert_eq!(clock.latency(), Some(Duration::from_millis(2040)));
        // 3.0 s behind, once the edge has settled: speed up a little.
        let t = t0 + Duration::from_secs(9);
        clock.tick(
            t,
            &rx,
            Some(clock.last_pts.unwrap() + Duration::from_secs(3)),
        );
        assert_eq!(clock.rate(), FAST);
        // On target: normal speed.
        let t = t + Duration::from_millis(1000);
        clock.tick(
            t,
            &rx,
            Some(clock.last_pts.unwrap() + Duration::from_millis(2500)),
        );
        assert_eq!(clock.rate(), 1.0);
    }

    #[test]
    fn far_behind_the_edge_it_drops_frames_to_catch_up_instead_of_bursting() {
        let (tx, rx) = unbounded();
        for i in 0..300 {
            tx.send(frame(i, i * 40)).unwrap();
        }
        let t0 = Instant::now();
        let mut clock = PresentationClock::new(Some(live_policy()));
        clock.tick(t0, &rx, Some(Duration::from_secs(2)));
        // The edge is suddenly 8 s ahead of the frame on screen (2.5 s target).
        let t = clock.tick(
            t0 + Duration::from_millis(40),
            &rx,
            Some(Duration::from_secs(8)),
        );
        assert!(t.catch_up);
        let shown = t
            .show
            .expect("the first frame at the new position is shown at once");
        assert_eq!(
            shown.pts,
            Duration::from_millis(5520),
            "8 s - 2.5 s, on a frame boundary"
        );
        assert_eq!(t.skipped, 137, "frames 1..=137 were dropped, none shown");
        // And paced normally afterwards.
        assert!(
            clock
                .tick(
                    t0 + Duration::from_millis(60),
                    &rx,
                    Some(Duration::from_secs(8))
                )
                .show
                .is_none()
        );
    }

    /// 4 s into a live clock started at `t0`: a frame is shown with the edge at 6 s, then
    /// the edge estimate jumps to 3.7 s ahead of it (1.2 s more than time moved). Returns
    /// the frame shown before the jump and the tick after it.
    fn edge_jumps_4_s_in(
        clock: &mut PresentationClock,
        rx: &Receiver<VideoFrame>,
        t0: Instant,
    ) -> (Duration, Tick) {
        let at = t0 + Duration::from_secs(4);
        let shown = clock
            .tick(at, rx, Some(Duration::from_secs(6)))
            .show
            .unwrap()
            .pts;
        let t = clock.tick(
            at + Duration::from_millis(1),
            rx,
            Some(shown + Duration::from_millis(3700)),
        );
        (shown, t)
    }

    #[test]
    fn while_the_edge_settles_a_jump_ahead_is_caught_up_at_once() {
        let t0 = Instant::now();
        let (mut clock, rx) = live_clock(300, t0, Duration::from_secs(2));
        // 4 s in, the reloads have found that the origin publishes 1.2 s earlier than the
        // first load suggested: the edge is 1.2 s further ahead (3.7 s behind, target 2.5).
        let (shown, t) = edge_jumps_4_s_in(&mut clock, &rx, t0);
        assert!(t.catch_up, "dropped to the target, not steered for 40 s");
        let now_shown = t
            .show
            .expect("the frame at the target is shown at once")
            .pts;
        assert!(
            (now_shown - shown).abs_diff(Duration::from_millis(1200)) <= Duration::from_millis(40),
            "{shown:?} -> {now_shown:?}"
        );
        // The same error once settled is steered by speed alone.
        let (mut clock, rx) = live_clock(400, t0, Duration::from_secs(2));
        let at = t0 + Duration::from_secs(9);
        let shown = clock.tick(at, &rx, None).show.unwrap().pts;
        let t = clock.tick(
            at + Duration::from_millis(1),
            &rx,
            Some(shown + Duration::from_millis(3700)),
        );
        assert!(!t.catch_up);
        assert_eq!(clock.rate(), FAST);
    }

    #[test]
    fn an_edge_seen_late_by_a_retried_load_is_not_caught_up_by_dropping_frames() {
        let t0 = Instant::now();
        let (mut clock, rx) = live_clock(300, t0, Duration::from_secs(2));
        // The first playlist load was retried (HTTP 503): the same jump as above is the
        // retry's delay, and the frames behind it still play.
        clock.edge_load_retried();
        let (_, t) = edge_jumps_4_s_in(&mut clock, &rx, t0);
        assert!(!t.catch_up);
        assert_eq!(t.skipped, 0);
        assert_eq!(clock.rate(), FAST, "steered by speed instead");
    }

    #[test]
    fn latency_that_grows_while_frames_are_late_is_not_an_edge_jump() {
        let (tx, rx) = unbounded();
        tx.send(frame(0, 0)).unwrap();
        let t0 = Instant::now();
        let mut clock = PresentationClock::new(Some(live_policy()));
        clock.tick(t0, &rx, Some(Duration::from_millis(2500)));
        // No frame for 1.2 s while the edge moves on with time: 3.7 s behind, not a jump.
        // And after a correction of the edge, a dry queue is a stall, not a catch-up.
        clock.edge_jumps = Duration::from_secs(1);
        for ms in (100..=1200).step_by(100) {
            let t = clock.tick(
                t0 + Duration::from_millis(ms),
                &rx,
                Some(Duration::from_millis(2500 + ms)),
            );
            assert!(!t.catch_up, "at {ms} ms");
        }
    }

    #[test]
    fn frames_a_stall_delayed_are_not_dropped_while_the_edge_settles() {
        let (tx, rx) = unbounded();
        tx.send(frame(0, 0)).unwrap();
        let t0 = Instant::now();
        let mut clock = PresentationClock::new(Some(live_policy()));
        clock.tick(t0, &rx, Some(Duration::from_millis(2500)));
        // A segment comes 1 s late (a retried request): a stall, 1 s into the show.
        tx.send(frame(1, 40)).unwrap();
        let t = clock.tick(t0 + Duration::from_millis(1040), &rx, None);
        assert!(t.stall.is_some());
        for i in 2..100 {
            tx.send(frame(i, i * 40)).unwrap();
        }
        // 1 s more behind the edge than the target: steered by speed, nothing dropped.
        let t = clock.tick(
            t0 + Duration::from_millis(1100),
            &rx,
            Some(Duration::from_millis(40 + 3000 + 1000)),
        );
        assert!(!t.catch_up, "the delayed frames still play");
        assert_eq!(t.skipped, 0);
        assert_eq!(clock.rate(), FAST);
    }

    #[test]
    fn stalls_raise_the_target_and_clean_playback_lowers_it() {
        let (tx, rx) = unbounded();
        tx.send(frame(0, 0)).unwrap();
        let t0 = Instant::now();
        let mut clock = PresentationClock::new(Some(live_policy()));
        clock.tick(t0, &rx, Some(Duration::from_millis(2500)));
        clock.tick(
            t0 + Duration::from_millis(100),
            &rx,
            Some(Duration::from_millis(2600)),
        );
        tx.send(frame(1, 40)).unwrap();
        let t = clock.tick(t0 + Duration::from_secs(1), &rx, None);
        assert!(t.stall.is_some());
        assert_eq!(clock.target(), Some(Duration::from_secs(3)));
        // 20 s later without a stall, a quarter second comes back.
        for i in 2..600 {
            tx.send(frame(i, i * 40)).unwrap();
        }
        let resumed = clock.tick(t0 + Duration::from_millis(1040), &rx, None);
        assert!(resumed.show.is_some() && resumed.stall.is_none());
        let later = t0 + Duration::from_secs(22);
        clock.tick(
            later,
            &rx,
            Some(clock.last_pts.unwrap() + Duration::from_secs(3)),
        );
        assert_eq!(clock.target(), Some(Duration::from_millis(2750)));
    }

    #[test]
    fn an_on_arrival_clock_shows_the_newest_frame_at_once() {
        let (tx, rx) = unbounded();
        let t0 = Instant::now();
        let mut clock = PresentationClock::on_arrival();
        assert!(clock.tick(t0, &rx, None).show.is_none());
        // Timestamps far in the future or the past do not hold a frame back.
        tx.send(frame(0, 5000)).unwrap();
        assert_eq!(clock.tick(t0, &rx, None).show.unwrap().index, 0);
        tx.send(frame(1, 10)).unwrap();
        tx.send(frame(2, 20)).unwrap();
        let tick = clock.tick(t0 + Duration::from_millis(1), &rx, None);
        assert_eq!(tick.show.unwrap().index, 2);
        assert_eq!(tick.skipped, 1);
        assert!(!clock.has_pending());
    }

    #[test]
    fn an_every_frame_clock_shows_each_frame_once_in_order_whatever_the_time() {
        let (tx, rx) = unbounded();
        for i in 0..5 {
            tx.send(frame(i, i * 33)).unwrap();
        }
        let t0 = Instant::now();
        let mut clock = PresentationClock::every_frame();
        // Far behind real time: still one frame per tick, none skipped.
        for i in 0..5 {
            let tick = clock.tick(t0 + Duration::from_secs(60 * i), &rx, None);
            assert_eq!(tick.show.unwrap().index, i);
            assert_eq!(tick.skipped, 0);
        }
        assert!(clock.tick(t0, &rx, None).show.is_none());
    }
}
