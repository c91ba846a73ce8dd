//! Playing the show's sound in step with the picture (pure, no Bevy, no device): the
//! [`PresentationClock`] says which stream position is on screen now (the last presented
//! frame's, carried on by the wall clock); the [`Cursor`] picks the samples a device
//! buffer plays so that they sound when their picture shows. It plays on sample after
//! sample while the two stay within [`SLACK`] (no clicks from small drift); a larger gap
//! (a stall, a catch-up, the start) is a jump, and samples not there yet are silence,
//! counted as underruns.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::analysis::RATE;

/// How far the sound may drift from the picture before it jumps: 40 ms, the sync goal.
pub const SLACK: i64 = RATE as i64 / 25;
/// Sound kept behind the cursor at most, and ahead of it (a live segment's burst fits).
const KEEP: usize = 30 * RATE as usize;

/// Keeps a device that runs faster than real time to real time. A sound card pulls or
/// pushes samples at its rate and is never more than its buffer ahead of the wall clock;
/// ALSA's `null` device and its `file` plugin run as fast as they are fed, which would
/// burn a core and play or record hours in seconds. Called from the device's callback
/// with the samples it moves: it sleeps off whatever runs more than [`AHEAD`] ahead.
#[derive(Debug)]
pub struct Pacer {
    rate: u32,
    start: Option<Instant>,
    frames: u64,
}

/// How far ahead of the wall clock a device may run before it is held back.
pub const AHEAD: Duration = Duration::from_millis(250);

impl Pacer {
    /// For a device running at `rate` samples a second.
    pub fn new(rate: u32) -> Pacer {
        Pacer {
            rate: rate.max(1),
            start: None,
            frames: 0,
        }
    }

    /// `frames` samples (per channel) moved now; sleeps if that runs ahead.
    pub fn pace(&mut self, frames: usize) {
        let start = *self.start.get_or_insert_with(Instant::now);
        self.frames += frames as u64;
        let due = start + Duration::from_secs_f64(self.frames as f64 / f64::from(self.rate));
        if let Some(ahead) = due.checked_duration_since(Instant::now() + AHEAD) {
            std::thread::sleep(ahead.min(Duration::from_millis(100)));
        }
    }
}

/// Which stream position is on screen: the last presented frame's, and when.
#[derive(Debug)]
pub struct PresentationClock {
    base: Instant,
    /// Stream position (sample index) of the last presented frame; `i64::MIN` before.
    index: AtomicI64,
    /// When it was presented, in nanoseconds after `base`.
    at: AtomicU64,
}

impl Default for PresentationClock {
    fn default() -> Self {
        PresentationClock {
            base: Instant::now(),
            index: AtomicI64::new(i64::MIN),
            at: AtomicU64::new(0),
        }
    }
}

impl PresentationClock {
    /// A frame at stream position `index` was presented at `when`.
    pub fn presented(&self, index: i64, when: Instant) {
        let at = when.saturating_duration_since(self.base).as_nanos() as u64;
        self.at.store(at, Ordering::Relaxed);
        self.index.store(index, Ordering::Relaxed);
    }

    /// The stream position on screen at `when`; `None` before the first frame.
    pub fn position(&self, when: Instant) -> Option<i64> {
        let index = self.index.load(Ordering::Relaxed);
        if index == i64::MIN {
            return None;
        }
        let at = self.base + Duration::from_nanos(self.at.load(Ordering::Relaxed));
        let since = when.saturating_duration_since(at).as_secs_f64();
        Some(index + (since * f64::from(RATE)) as i64)
    }
}

/// Stereo samples by stream position, fed by the bus and read by the device.
#[derive(Debug, Default)]
pub struct SampleQueue {
    first: i64,
    left: VecDeque<f32>,
    right: VecDeque<f32>,
}

impl SampleQueue {
    /// Samples whose first is at `start` (a gap is silence; an overlap or a jump back
    /// starts over there).
    pub fn push(&mut self, start: i64, left: &[f32], right: &[f32]) {
        let end = self.first + self.left.len() as i64;
        if self.left.is_empty() || start < end - SLACK || start > end + 2 * RATE as i64 {
            self.left.clear();
            self.right.clear();
            self.first = start;
        } else if start > end {
            let gap = (start - end) as usize;
            self.left.extend(std::iter::repeat_n(0.0, gap));
            self.right.extend(std::iter::repeat_n(0.0, gap));
        }
        let end = self.first + self.left.len() as i64;
        let skip = (end - start).max(0) as usize;
        self.left.extend(left.iter().skip(skip));
        self.right.extend(right.iter().skip(skip));
        if self.left.len() > 2 * KEEP {
            let drop = self.left.len() - 2 * KEEP;
            self.left.drain(..drop);
            self.right.drain(..drop);
            self.first += drop as i64;
        }
    }

    /// The sample at `index`, if it is here.
    fn get(&self, index: i64) -> Option<(f32, f32)> {
        let i = usize::try_from(index - self.first).ok()?;
        Some((*self.left.get(i)?, *self.right.get(i)?))
    }

    /// Lets go of what is older than `index` less [`KEEP`].
    fn forget_before(&mut self, index: i64) {
        let n = (index - KEEP as i64 - self.first).clamp(0, self.left.len() as i64) as usize;
        self.left.drain(..n);
        self.right.drain(..n);
        self.first += n as i64;
    }
}

/// Where the device reads next, and what it has cost.
#[derive(Debug, Default)]
pub struct Cursor {
    next: Option<i64>,
    /// Jumps made to follow the picture.
    pub jumps: u64,
    /// Samples played as silence because theirs had not come.
    pub underruns: u64,
    /// How far the sound last handed to the device is behind the picture it sounds with,
    /// in samples (negative: ahead); `None` before the first picture.
    pub offset: Option<i64>,
}

impl Cursor {
    /// Fills `out` (interleaved, `channels` a frame) with the sound due at `due`, the
    /// stream position the picture will be at when the buffer's first sample sounds
    /// (`None`: no picture yet, silence).
    pub fn fill(
        &mut self,
        out: &mut [f32],
        channels: usize,
        queue: &mut SampleQueue,
        due: Option<i64>,
    ) {
        let channels = channels.max(1);
        let Some(due) = due else {
            out.fill(0.0);
            return;
        };
        let mut next = match self.next {
            Some(n) if (n - due).abs() <= SLACK => n,
            Some(_) => {
                self.jumps += 1;
                due
            }
            None => due,
        };
        self.offset = Some(due - next);
        for frame in out.chunks_mut(channels) {
            let (l, r) = queue.get(next).unwrap_or_else(|| {
                self.underruns += 1;
                (0.0, 0.0)
            });
            frame[0] = l;
            if channels > 1 {
                frame[1] = r;
            }
            for extra in frame.iter_mut().skip(2) {
                *extra = 0.0;
            }
            next += 1;
        }
        self.next = Some(next);
        queue.forget_before(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    #[test]
    fn plays_on_sample_by_sample_within_the_slack_and_jumps_beyond_it() {
        let mut q = SampleQueue::default();
        let samples = ramp(48_000);
        q.push(1000, &samples, &samples);
        let mut c = Cursor::default();
        let mut out = vec![0.0; 512];
        c.fill(&mut out, 2, &mut q, Some(2000));
        assert_eq!(out[0], 1000.0, "sample at 2000");
        assert_eq!(out[510], 1255.0);
        // The picture ran 10 ms ahead: within the slack, the sound plays on.
        c.fill(&mut out, 2, &mut q, Some(2256 + 480));
        assert_eq!(out[0], 1256.0);
        assert_eq!(c.jumps, 0);
        assert_eq!(c.offset, Some(480), "the sound is 10 ms behind the picture");
        // A stall's worth (100 ms): the sound jumps to the picture.
        c.fill(&mut out, 2, &mut q, Some(2512 + 4800));
        assert_eq!(out[0], (2512 + 4800 - 1000) as f32);
        assert_eq!(c.jumps, 1);
        assert_eq!(c.offset, Some(0), "on the picture again");
        assert_eq!(c.underruns, 0);
    }

    #[test]
    fn missing_sound_is_silence_counted_and_no_picture_is_silence() {
        let mut q = SampleQueue::default();
        q.push(0, &[0.5; 100], &[0.5; 100]);
        let mut c = Cursor::default();
        let mut out = vec![1.0; 400];
        c.fill(&mut out, 2, &mut q, None);
        assert!(out.iter().all(|s| *s == 0.0));
        c.fill(&mut out, 2, &mut q, Some(0));
        assert_eq!(&out[..2], &[0.5, 0.5]);
        assert_eq!(out[200], 0.0);
        assert_eq!(c.underruns, 100);
    }

    #[test]
    fn a_gap_in_the_sound_is_silence_in_place() {
        let mut q = SampleQueue::default();
        q.push(0, &[1.0; 10], &[1.0; 10]);
        q.push(20, &[2.0; 10], &[2.0; 10]);
        let mut c = Cursor::default();
        let mut out = vec![9.0; 60];
        c.fill(&mut out, 2, &mut q, Some(0));
        let left: Vec<f32> = out.iter().step_by(2).copied().collect();
        assert_eq!(&left[..10], &[1.0; 10]);
        assert_eq!(&left[10..20], &[0.0; 10]);
        assert_eq!(&left[20..30], &[2.0; 10]);
    }

    #[test]
    fn a_device_faster_than_real_time_is_held_to_it() {
        let mut pacer = Pacer::new(48_000);
        let started = Instant::now();
        // A second of sound in 10 ms pieces, as fast as a null device asks for them.
        for _ in 0..100 {
            pacer.pace(480);
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(700), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
    }

    #[test]
    fn the_clock_carries_the_last_frame_on_by_the_wall_clock() {
        let clock = PresentationClock::default();
        let now = Instant::now();
        assert_eq!(clock.position(now), None);
        clock.presented(48_000, now);
        assert_eq!(
            clock.position(now + Duration::from_millis(500)),
            Some(72_000)
        );
    }
}
