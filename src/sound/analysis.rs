//! Sound as numbers (pure, no Bevy): the show's sound, placed by stream time, cut into
//! overlapping windows and measured: level, four bands, a spectrum, and onsets (a hit: a
//! jump of spectral flux above its own recent run). Windows end on sample positions fixed
//! by the stream's timeline, so the same sound gives the same numbers on any machine.
//!
//! [`TempoTracker`] turns onset times into a tempo (a comb over 60-180 bpm that counts
//! onsets on the beat and beats without an onset), for `--bpm audio`.

use std::collections::VecDeque;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// Samples a second (the show's sound is resampled to this).
pub const RATE: u32 = crate::decode::audio::SAMPLE_RATE;
/// Samples in one analysis window: 21.3 ms at 48 kHz, so a sound reaches the picture
/// within one frame plus 25 ms.
pub const WINDOW: usize = 1024;
/// Samples between windows: 5.3 ms, so an onset is placed within a few milliseconds.
pub const HOP: usize = 256;
/// Bands of the spectrum effects read (`audio_spectrum`), log-spaced over 20 Hz-20 kHz.
pub const SPECTRUM_BINS: usize = 64;
/// The four bands' edges in Hz: bass, low mids, high mids, treble.
pub const BANDS: [(f32, f32); 4] = [
    (20.0, 250.0),
    (250.0, 2_000.0),
    (2_000.0, 6_000.0),
    (6_000.0, 20_000.0),
];
/// Levels are shown over this many dB below full scale (a full-scale sine is 0 dB = 1).
const RANGE_DB: f32 = 60.0;
/// The shortest time between two onsets: a hit rings for a while.
const ONSET_REFRACTORY: f64 = 0.08;
/// Flux history the onset threshold is taken from: about half a second of hops.
const FLUX_HISTORY: usize = 96;
/// Flux below this never counts (the noise floor of quiet passages).
const FLUX_FLOOR: f32 = 0.02;
/// A gap in the sound up to this long is silence; a longer jump starts a new timeline.
const MAX_GAP: i64 = 2 * RATE as i64;
/// Samples kept ahead of the analysis at most (a burst of a live segment fits).
const MAX_AHEAD: usize = 30 * RATE as usize;

/// One window's measures.
#[derive(Debug, Clone, PartialEq)]
pub struct Measures {
    /// Sample index (stream time x [`RATE`]) just after the window's last sample.
    pub end: i64,
    /// RMS level, 0 (-60 dBFS or less) to 1 (full scale).
    pub level: f32,
    /// Bass, low mids, high mids, treble, 0..1 each on the same scale.
    pub bands: [f32; 4],
    /// Log-spaced spectrum, 0..1 a bin.
    pub spectrum: [f32; SPECTRUM_BINS],
    /// A hit starts in this window.
    pub onset: bool,
}

/// The analysis of one sound: samples in by stream position, [`Measures`] out.
pub struct Analyzer {
    fft: Arc<dyn RealToComplex<f32>>,
    hann: Vec<f32>,
    input: Vec<f32>,
    output: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    /// Compressed magnitudes of the last window, for the flux.
    previous: Option<Vec<f32>>,
    /// This window's magnitudes and compressed magnitudes (kept to save allocations).
    magnitudes: Vec<f32>,
    compressed: Vec<f32>,
    flux: VecDeque<f32>,
    last_onset: Option<i64>,
    /// Mono samples from `first` on.
    samples: VecDeque<f32>,
    first: i64,
    /// Where the next window ends.
    next_end: Option<i64>,
    /// Samples dropped: a sound far ahead of the picture.
    pub dropped: u64,
}

impl Default for Analyzer {
    fn default() -> Self {
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(WINDOW);
        let hann = (0..WINDOW)
            .map(|i| {
                let x = std::f32::consts::TAU * i as f32 / WINDOW as f32;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        Analyzer {
            input: fft.make_input_vec(),
            output: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            hann,
            previous: None,
            magnitudes: Vec::new(),
            compressed: Vec::new(),
            flux: VecDeque::with_capacity(FLUX_HISTORY),
            last_onset: None,
            samples: VecDeque::new(),
            first: 0,
            next_end: None,
            dropped: 0,
        }
    }
}

impl Analyzer {
    /// Stereo samples whose first is at sample index `start`: placed after what came
    /// before (a gap is silence, an overlap is cut); a jump back, or forward by more than
    /// two seconds, starts a new timeline there.
    pub fn push(&mut self, start: i64, left: &[f32], right: &[f32]) {
        let end = self.first + self.samples.len() as i64;
        let mut skip = 0;
        if self.next_end.is_none() || start < self.first || start - end > MAX_GAP {
            self.samples.clear();
            self.first = start;
            self.next_end = Some(start + WINDOW as i64);
            self.previous = None;
        } else if start > end {
            self.samples
                .extend(std::iter::repeat_n(0.0, (start - end) as usize));
        } else {
            skip = (end - start) as usize;
        }
        let mono = left
            .iter()
            .zip(right)
            .skip(skip)
            .map(|(l, r)| 0.5 * (l + r));
        self.samples.extend(mono);
        if self.samples.len() > MAX_AHEAD + WINDOW {
            let drop = self.samples.len() - MAX_AHEAD - WINDOW;
            self.samples.drain(..drop);
            self.first += drop as i64;
            self.dropped += drop as u64;
            if let Some(next) = self.next_end.as_mut() {
                *next = (*next).max(self.first + WINDOW as i64);
            }
        }
    }

    /// Sample index just after the last sample pushed; `None` before any.
    pub fn available(&self) -> Option<i64> {
        self.next_end?;
        Some(self.first + self.samples.len() as i64)
    }

    /// Measures every window that ends at or before `until` and is all there, in order.
    pub fn run_until(&mut self, until: i64, out: &mut Vec<Measures>) {
        while let Some(end) = self.next_end {
            let start = end - WINDOW as i64;
            if end > until || end > self.first + self.samples.len() as i64 {
                break;
            }
            if start >= self.first {
                let offset = (start - self.first) as usize;
                for (i, slot) in self.input.iter_mut().enumerate() {
                    *slot = self.samples[offset + i];
                }
                out.push(self.measure(end));
            }
            self.next_end = Some(end + HOP as i64);
            // What no later window reaches is let go.
            let keep_from = end + HOP as i64 - WINDOW as i64;
            if keep_from > self.first {
                let n = ((keep_from - self.first) as usize).min(self.samples.len());
                self.samples.drain(..n);
                self.first += n as i64;
            }
        }
    }

    fn measure(&mut self, end: i64) -> Measures {
        let power: f32 = self.input.iter().map(|s| s * s).sum::<f32>() / WINDOW as f32;
        // A full-scale sine's RMS is 1/sqrt(2): scaled so that it reads 0 dB.
        let level = scale_db(10.0 * (2.0 * power).max(1e-12).log10());
        for (s, w) in self.input.iter_mut().zip(&self.hann) {
            *s *= *w;
        }
        let _ = self
            .fft
            .process_with_scratch(&mut self.input, &mut self.output, &mut self.scratch);
        // A sine of amplitude A peaks at A * N / 4 through the Hann window.
        let norm = 4.0 / WINDOW as f32;
        let mut magnitudes = std::mem::take(&mut self.magnitudes);
        magnitudes.clear();
        magnitudes.extend(self.output.iter().map(|c| c.norm() * norm));
        let hz_per_bin = RATE as f32 / WINDOW as f32;
        let bin = |hz: f32| ((hz / hz_per_bin).round() as usize).min(magnitudes.len() - 1);
        let mut bands = [0.0; 4];
        for (value, (lo, hi)) in bands.iter_mut().zip(BANDS) {
            // Hann spreads a sine over three bins: 1 + 2 x 0.25 of its power.
            let power: f32 = magnitudes[bin(lo)..bin(hi).max(bin(lo) + 1)]
                .iter()
                .map(|m| m * m)
                .sum::<f32>()
                / 1.5;
            *value = scale_db(10.0 * power.max(1e-12).log10());
        }
        let mut spectrum = [0.0; SPECTRUM_BINS];
        for (j, value) in spectrum.iter_mut().enumerate() {
            let lo = 20.0 * 1000f32.powf(j as f32 / SPECTRUM_BINS as f32);
            let hi = 20.0 * 1000f32.powf((j + 1) as f32 / SPECTRUM_BINS as f32);
            let (a, b) = (bin(lo), bin(hi).max(bin(lo) + 1));
            let peak = magnitudes[a..b].iter().fold(0.0f32, |m, v| m.max(*v));
            *value = scale_db(20.0 * peak.max(1e-6).log10());
        }
        let mut compressed = std::mem::take(&mut self.compressed);
        compressed.clear();
        compressed.extend(magnitudes.iter().map(|m| (1000.0 * m).ln_1p()));
        self.magnitudes = magnitudes;
        let flux = match &self.previous {
            Some(prev) => {
                compressed
                    .iter()
                    .zip(prev)
                    .map(|(now, before)| (now - before).max(0.0))
                    .sum::<f32>()
                    / compressed.len() as f32
            }
            None => 0.0,
        };
        // The last window's buffer is reused for the next one.
        self.compressed = self.previous.replace(compressed).unwrap_or_default();
        let onset = self.is_onset(flux, end);
        if self.flux.len() == FLUX_HISTORY {
            self.flux.pop_front();
        }
        self.flux.push_back(flux);
        Measures {
            end,
            level,
            bands,
            spectrum,
            onset,
        }
    }

    /// A hit: flux well above its recent run (mean + 3 deviations), above the floor, and
    /// not within the last hit's ring.
    fn is_onset(&mut self, flux: f32, end: i64) -> bool {
        let n = self.flux.len().max(1) as f32;
        let mean = self.flux.iter().sum::<f32>() / n;
        let var = self.flux.iter().map(|f| (f - mean).powi(2)).sum::<f32>() / n;
        let threshold = (mean + 3.0 * var.sqrt()).max(FLUX_FLOOR);
        let ringing = self
            .last_onset
            .is_some_and(|t| ((end - t) as f64) < ONSET_REFRACTORY * f64::from(RATE));
        let onset = flux > threshold && !ringing;
        if onset {
            self.last_onset = Some(end);
        }
        onset
    }
}

/// dB (0 = full scale) to 0..1 over [`RANGE_DB`].
fn scale_db(db: f32) -> f32 {
    ((db + RANGE_DB) / RANGE_DB).clamp(0.0, 1.0)
}

/// Onsets this long ago no longer count for the tempo.
const TEMPO_MEMORY: f64 = 8.0;
/// An onset this close to a beat is on it.
const ON_BEAT: f64 = 0.035;
/// The tempos the tracker considers.
pub const TEMPO_RANGE: std::ops::RangeInclusive<f64> = 60.0..=180.0;

/// A tempo from onset times (seconds of stream time).
#[derive(Debug, Default, Clone)]
pub struct TempoTracker {
    onsets: VecDeque<f64>,
}

impl TempoTracker {
    /// An onset at `time`.
    pub fn onset(&mut self, time: f64) {
        if self.onsets.back().is_some_and(|last| time < *last) {
            // A new timeline: the old onsets say nothing about this one.
            self.onsets.clear();
        }
        self.onsets.push_back(time);
        while self
            .onsets
            .front()
            .is_some_and(|first| time - first > TEMPO_MEMORY)
        {
            self.onsets.pop_front();
        }
    }

    /// Beats per minute and the time of the last onset on the beat (beat 0), once at
    /// least four onsets agree; `None` before.
    pub fn estimate(&self) -> Option<(f64, f64)> {
        let last = *self.onsets.back()?;
        if self.onsets.len() < 4 {
            return None;
        }
        let span = last - self.onsets.front()?;
        let mut best: Option<(f64, f64)> = None;
        let mut bpm = *TEMPO_RANGE.start();
        let mut beats_hit = Vec::with_capacity(self.onsets.len());
        while bpm <= *TEMPO_RANGE.end() {
            let period = 60.0 / bpm;
            beats_hit.clear();
            for t in &self.onsets {
                let beats = (last - t) / period;
                if (beats - beats.round()).abs() * period < ON_BEAT {
                    beats_hit.push(beats.round() as i64);
                }
            }
            // Onsets come in time order: two on the same beat are next to each other.
            beats_hit.dedup();
            let expected = (span / period).floor() + 1.0;
            let hits = beats_hit.len() as f64;
            let score = hits - 0.5 * (expected - hits).max(0.0);
            if best.is_none_or(|(_, s)| score > s + 1e-9) {
                best = Some((bpm, score));
            }
            bpm += 0.25;
        }
        let (coarse, score) = best?;
        if score < 3.0 {
            return None;
        }
        // Refined: the least-squares period of the onsets on the beat.
        let period = 60.0 / coarse;
        let on_beat: Vec<(f64, f64)> = self
            .onsets
            .iter()
            .filter_map(|t| {
                let beats = (last - t) / period;
                ((beats - beats.round()).abs() * period < ON_BEAT).then(|| (-beats.round(), *t))
            })
            .collect();
        let n = on_beat.len() as f64;
        let (mx, my) = on_beat
            .iter()
            .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
        let (sxy, sxx) = on_beat.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
            (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
        });
        let period = if sxx > 0.0 { sxy / sxx } else { period };
        Some((60.0 / period, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(analyzer: &mut Analyzer, mono: &[f32]) -> Vec<Measures> {
        analyzer.push(0, mono, mono);
        let mut out = Vec::new();
        analyzer.run_until(mono.len() as i64, &mut out);
        out
    }

    fn sine(hz: f32, amplitude: f32, seconds: f32) -> Vec<f32> {
        (0..(seconds * RATE as f32) as usize)
            .map(|i| amplitude * (std::f32::consts::TAU * hz * i as f32 / RATE as f32).sin())
            .collect()
    }

    #[test]
    fn a_full_scale_sine_reads_full_and_lands_in_its_band() {
        let out = feed(&mut Analyzer::default(), &sine(100.0, 1.0, 0.5));
        let last = out.last().unwrap();
        assert!((last.level - 1.0).abs() < 0.01, "{}", last.level);
        assert!(last.bands[0] > 0.95, "{:?}", last.bands);
        assert!(
            last.bands[2] < 0.3 && last.bands[3] < 0.3,
            "{:?}",
            last.bands
        );
        let treble = feed(&mut Analyzer::default(), &sine(9_000.0, 0.1, 0.5));
        let last = treble.last().unwrap();
        // -20 dB: two thirds of the 60 dB scale.
        assert!((last.level - 2.0 / 3.0).abs() < 0.01, "{}", last.level);
        assert!((last.bands[3] - 2.0 / 3.0).abs() < 0.03, "{:?}", last.bands);
        assert!(last.bands[0] < 0.2, "{:?}", last.bands);
        let peak = (0..SPECTRUM_BINS)
            .max_by(|a, b| last.spectrum[*a].total_cmp(&last.spectrum[*b]))
            .unwrap();
        let centre = 20.0 * 1000f32.powf((peak as f32 + 0.5) / SPECTRUM_BINS as f32);
        assert!(
            (centre / 9_000.0 - 1.0).abs() < 0.1,
            "bin {peak}: {centre} Hz"
        );
    }

    #[test]
    fn silence_is_zero_and_has_no_onset() {
        let out = feed(&mut Analyzer::default(), &vec![0.0; RATE as usize]);
        assert!(out.iter().all(|m| m.level == 0.0 && !m.onset));
        assert_eq!(out.len(), (RATE as usize - WINDOW) / HOP + 1);
    }

    fn clicks(every: f64, seconds: f64) -> (Vec<f32>, Vec<i64>) {
        let mut mono = vec![0.0f32; (seconds * f64::from(RATE)) as usize];
        let mut at = Vec::new();
        let mut t = 0.25;
        while t < seconds - 0.05 {
            let i = (t * f64::from(RATE)) as usize;
            for (k, s) in mono[i..i + 240].iter_mut().enumerate() {
                *s = 0.8 * (1.0 - k as f32 / 240.0) * if k % 2 == 0 { 1.0 } else { -1.0 };
            }
            at.push(i as i64);
            t += every;
        }
        (mono, at)
    }

    #[test]
    fn each_click_is_one_onset_placed_within_a_window() {
        let (mono, at) = clicks(0.5, 6.0);
        let out = feed(&mut Analyzer::default(), &mono);
        let onsets: Vec<i64> = out.iter().filter(|m| m.onset).map(|m| m.end).collect();
        assert_eq!(onsets.len(), at.len(), "{onsets:?} vs {at:?}");
        for (found, click) in onsets.iter().zip(&at) {
            // Seen once the click is in the window, before the window has passed it.
            assert!(
                *found > *click && *found - *click <= WINDOW as i64,
                "{found} for {click}"
            );
        }
    }

    #[test]
    fn the_same_sound_in_other_pieces_measures_the_same() {
        let (mono, _) = clicks(0.4, 3.0);
        let whole = feed(&mut Analyzer::default(), &mono);
        let mut pieces = Analyzer::default();
        let mut out = Vec::new();
        let mut at = 0;
        for (n, size) in [1000usize, 37, 4096, 999].iter().cycle().enumerate() {
            if at >= mono.len() {
                break;
            }
            let end = (at + size).min(mono.len());
            pieces.push(at as i64, &mono[at..end], &mono[at..end]);
            // Asked at other moments than the whole run was.
            pieces.run_until((at as i64) - (n as i64 % 3) * 100, &mut out);
            at = end;
        }
        pieces.run_until(mono.len() as i64, &mut out);
        assert_eq!(whole, out);
    }

    #[test]
    fn a_gap_is_silence_and_a_jump_back_starts_again() {
        let mut a = Analyzer::default();
        let tone = sine(440.0, 0.5, 0.1);
        a.push(0, &tone, &tone);
        a.push(tone.len() as i64 + 4_800, &tone, &tone);
        assert_eq!(a.available(), Some(2 * tone.len() as i64 + 4_800));
        let mut out = Vec::new();
        a.run_until(i64::MAX, &mut out);
        assert!(out.iter().any(|m| m.level == 0.0), "the gap reads silent");
        a.push(0, &tone, &tone);
        assert_eq!(a.available(), Some(tone.len() as i64));
    }

    #[test]
    fn clicks_at_a_tempo_give_that_tempo_not_its_double_or_half() {
        for bpm in [72.0, 100.0, 128.0, 174.0] {
            let mut tracker = TempoTracker::default();
            assert_eq!(tracker.estimate(), None);
            let period = 60.0 / bpm;
            for i in 0..16 {
                // A few milliseconds of jitter, as onsets found on hops have.
                let jitter = [0.0, 0.004, -0.003, 0.002][i % 4];
                tracker.onset(10.0 + i as f64 * period + jitter);
            }
            let (found, anchor) = tracker.estimate().unwrap();
            assert!((found - bpm).abs() < 0.5, "{bpm}: {found}");
            assert!((anchor - (10.0 + 15.0 * period + 0.002)).abs() < 1e-9);
        }
        let mut sparse = TempoTracker::default();
        for t in [1.0, 1.5, 2.0] {
            sparse.onset(t);
        }
        assert_eq!(sparse.estimate(), None, "three onsets are not a tempo yet");
    }
}
