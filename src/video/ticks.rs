//! [`OutputTicks`]: the output's own clock under `--fps` (real time, or the video's time
//! offline).

use std::time::{Duration, Instant};

use bevy::prelude::Resource;
use crossbeam_channel::Receiver;

use crate::decode::VideoFrame;

/// `--fps`: the output clock. Ticks start at the video's first frame and come every
/// `period`; a tick the app was too late for is skipped (not made up), so the output keeps
/// its rate against the wall clock. Offline (files only), ticks run on the video's own
/// time instead ([`OutputTicks::offline_tick`]): every tick is rendered, none missed.
#[derive(Resource, Debug)]
pub struct OutputTicks {
    /// Time between output frames.
    pub period: Duration,
    /// When the first tick was (the video's first frame).
    pub(super) start: Option<Instant>,
    /// The video's first frame's timestamp: output timestamps count from it.
    pub(super) first_pts: Option<Duration>,
    /// The next tick's number.
    next: u64,
    /// Ticks skipped because the app came too late for them.
    pub missed: u64,
    /// Offline: the video's next frame, decoded but not yet due.
    held: Option<VideoFrame>,
    /// Offline: the newest frame due by the next tick, shown once that tick is complete.
    due: Option<VideoFrame>,
}

impl OutputTicks {
    /// An output clock at `fps` frames a second.
    pub fn new(fps: f64) -> OutputTicks {
        OutputTicks {
            period: Duration::from_secs_f64(1.0 / fps),
            start: None,
            first_pts: None,
            next: 0,
            missed: 0,
            held: None,
            due: None,
        }
    }

    /// Output frames a second.
    pub fn fps(&self) -> f64 {
        1.0 / self.period.as_secs_f64()
    }

    /// True while a decoded video frame waits for its tick (offline).
    pub fn holds_frame(&self) -> bool {
        self.held.is_some() || self.due.is_some()
    }

    /// Offline: the next tick's output time, once the video's frames due by then are known
    /// (the first one after it is decoded), with the newest of them (older ones due in the
    /// same tick would only be overwritten). `None` while the decoder has not caught up,
    /// and once the video `ended` and its last frame was shown: the last tick is the one
    /// that shows the last frame.
    pub fn offline_tick(
        &mut self,
        frames: &Receiver<VideoFrame>,
        ended: bool,
    ) -> Option<(Duration, Option<VideoFrame>)> {
        loop {
            if self.held.is_none() {
                self.held = frames.try_recv().ok();
            }
            let Some(frame) = &self.held else {
                // Wait for the decoder; at the end, the frames shown close the last tick.
                if ended && self.due.is_some() {
                    break;
                }
                return None;
            };
            let first = *self.first_pts.get_or_insert(frame.pts);
            let due = first + self.period.mul_f64(self.next as f64);
            // A microsecond's grace: 25 fps frames land exactly on 30 fps ticks at times.
            if frame.pts > due + Duration::from_micros(1) {
                break;
            }
            self.due = self.held.take();
        }
        let pts = self.first_pts? + self.period.mul_f64(self.next as f64);
        self.next += 1;
        Some((pts, self.due.take()))
    }

    /// When the next tick is due (`None` before the video's first frame).
    pub fn next_due(&self) -> Option<Instant> {
        Some(self.start? + self.period.mul_f64(self.next as f64))
    }

    /// The number of the tick due at `now`, if one is; ticks passed meanwhile are missed.
    pub(super) fn due(&mut self, now: Instant) -> Option<u64> {
        let start = self.start?;
        if now < self.next_due()? {
            return None;
        }
        let elapsed = now.duration_since(start).as_secs_f64();
        let current = (elapsed / self.period.as_secs_f64()).floor() as u64;
        self.missed += current.saturating_sub(self.next);
        self.next = current + 1;
        Some(current)
    }
}
