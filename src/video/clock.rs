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

/// What one tick of the clock decided.
#[derive(Debug, Default)]
pub struct Tick {
    /// The frame to show now, if a new one is due.
    pub show: Option<VideoFrame>,
    /// Frames that became due in the same tick as a newer one and were skipped.
    pub skipped: u64,
    /// How late the source delivered, when it stalled and the clock re-anchored
    /// (latency grew by this much).
    pub stall: Option<Duration>,
}

/// Maps stream time to wall time and picks the frame due at each tick.
#[derive(Debug, Default)]
pub struct PresentationClock {
    anchor: Option<(Instant, Duration)>,
    pending: Option<(VideoFrame, Instant)>,
    last_pts: Option<Duration>,
    last_due: Option<Instant>,
    step: Option<Duration>,
    starved: bool,
}

impl PresentationClock {
    /// True when a frame was taken from the queue but is not due yet.
    pub fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// When the frame taken from the queue is due; `None` while waiting for the decoder.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, due)| *due)
    }

    /// Takes every frame that is due at `now`, shows the newest of them and skips the rest.
    pub fn tick(&mut self, now: Instant, frames: &Receiver<VideoFrame>) -> Tick {
        let mut tick = Tick::default();
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
            let due = match (self.anchor, self.last_pts) {
                (Some((t0, p0)), Some(last))
                    if frame.pts >= p0 && frame.pts <= last + MAX_PTS_JUMP =>
                {
                    t0 + (frame.pts - p0)
                }
                _ => {
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
            if self.starved && now - due > LATE_TOLERANCE && tick.show.is_none() {
                // The source delivered late: play on from here rather than rush to catch up.
                self.anchor = Some((now, frame.pts));
                tick.stall = Some(now - due);
            }
            self.starved = false;
            if let Some(last) = self.last_pts
                && frame.pts > last
            {
                self.step = Some((frame.pts - last).clamp(MIN_STEP, MAX_STEP));
            }
            self.last_pts = Some(frame.pts);
            self.last_due = Some(due);
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
    use crate::decode::ColorMatrix;
    use crossbeam_channel::unbounded;

    fn frame(index: u64, ms: u64) -> VideoFrame {
        VideoFrame {
            index,
            pts: Duration::from_millis(ms),
            width: 2,
            height: 2,
            y: vec![0; 4],
            u: vec![0; 1],
            v: vec![0; 1],
            matrix: ColorMatrix::Bt709,
            full_range: false,
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
        assert_eq!(clock.tick(t0, &rx).show.unwrap().index, 0);
        assert!(
            clock
                .tick(t0 + Duration::from_millis(39), &rx)
                .show
                .is_none()
        );
        assert_eq!(
            clock
                .tick(t0 + Duration::from_millis(40), &rx)
                .show
                .unwrap()
                .index,
            1
        );
        // A slow renderer that wakes late shows the newest due frame and counts the rest.
        let t = clock.tick(t0 + Duration::from_millis(170), &rx);
        assert_eq!(t.show.unwrap().index, 4);
        assert_eq!(t.skipped, 2);
        assert!(t.stall.is_none());
    }

    #[test]
    fn a_stalled_source_re_anchors_instead_of_bursting() {
        let (tx, rx) = unbounded();
        tx.send(frame(0, 0)).unwrap();
        let t0 = Instant::now();
        let mut clock = PresentationClock::default();
        assert!(clock.tick(t0, &rx).show.is_some());
        // The queue runs dry; the next segment arrives 1 s late, all at once.
        assert!(
            clock
                .tick(t0 + Duration::from_millis(100), &rx)
                .show
                .is_none()
        );
        for i in 1..5 {
            tx.send(frame(i, i * 40)).unwrap();
        }
        let late = t0 + Duration::from_millis(1040);
        let t = clock.tick(late, &rx);
        assert_eq!(t.stall, Some(Duration::from_millis(1000)));
        assert_eq!(
            t.show.unwrap().index,
            1,
            "the first late frame is shown, not skipped"
        );
        assert!(
            clock
                .tick(late + Duration::from_millis(20), &rx)
                .show
                .is_none()
        );
        assert_eq!(
            clock
                .tick(late + Duration::from_millis(40), &rx)
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
        let first = clock.tick(t0, &rx);
        assert_eq!(
            first.show.unwrap().index,
            0,
            "the frame before the jump keeps its slot"
        );
        assert_eq!(first.skipped, 0);
        let t = clock.tick(t0 + Duration::from_millis(40), &rx);
        assert_eq!(t.show.unwrap().index, 1, "not held back for a minute");
    }
}
