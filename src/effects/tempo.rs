//! The show's tempo (pure): `bpm` from `--bpm` or tapped on a key, and the `beat` effects
//! get in their prelude, counted on the effect clock (stream time for files, so a render
//! is the same every time).

/// Taps further apart than this start a new tempo.
const TAP_RESET_S: f64 = 2.0;
/// The tempo is the mean of at most this many intervals between taps.
const TAP_WINDOW: usize = 4;
/// The tempos Lucid takes.
pub const BPM_RANGE: std::ops::RangeInclusive<f64> = 20.0..=300.0;

/// Where the show's tempo comes from (`--bpm`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TempoSource {
    /// This many beats per minute (taps, MIDI clock and OSC may change it).
    Fixed(f64),
    /// The sound's hits (`--bpm audio`): 120 until they keep a tempo.
    Sound,
}

impl TempoSource {
    /// The tempo the show starts with.
    pub fn initial(self) -> f64 {
        match self {
            TempoSource::Fixed(bpm) => bpm,
            TempoSource::Sound => Tempo::default().bpm,
        }
    }
}

impl std::str::FromStr for TempoSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("audio") {
            return Ok(TempoSource::Sound);
        }
        let bpm: f64 = s
            .parse()
            .map_err(|_| "a tempo in beats per minute (20-300), or `audio`".to_string())?;
        if !BPM_RANGE.contains(&bpm) {
            return Err(format!("the tempo must be 20 to 300 bpm, got {bpm}"));
        }
        Ok(TempoSource::Fixed(bpm))
    }
}

/// Beats per minute and where beat 0 falls on the effect clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tempo {
    /// Beats per minute.
    pub bpm: f64,
    /// Effect-clock seconds of beat 0.
    pub anchor: f64,
}

impl Default for Tempo {
    fn default() -> Self {
        Tempo {
            bpm: 120.0,
            anchor: 0.0,
        }
    }
}

impl Tempo {
    /// The beat at effect-clock `time` (0 before the anchor): whole beats plus the fraction.
    pub fn beat(&self, time: f64) -> f64 {
        ((time - self.anchor) * self.bpm / 60.0).max(0.0)
    }
}

/// Tap tempo: each tap's time; two or more close taps give a tempo.
#[derive(Debug, Clone, Default)]
pub struct TapTempo {
    taps: Vec<f64>,
}

impl TapTempo {
    /// A tap at `time` (seconds, any clock). Returns the tempo once two taps are close
    /// enough, anchored on this tap.
    pub fn tap(&mut self, time: f64) -> Option<Tempo> {
        if self
            .taps
            .last()
            .is_some_and(|last| time - last > TAP_RESET_S || time <= *last)
        {
            self.taps.clear();
        }
        self.taps.push(time);
        if self.taps.len() > TAP_WINDOW + 1 {
            self.taps.remove(0);
        }
        let n = self.taps.len();
        if n < 2 {
            return None;
        }
        let interval = (self.taps[n - 1] - self.taps[0]) / (n - 1) as f64;
        let bpm = (60.0 / interval).clamp(*BPM_RANGE.start(), *BPM_RANGE.end());
        Some(Tempo { bpm, anchor: time })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpm_is_a_number_in_range_or_audio() {
        assert_eq!("128".parse(), Ok(TempoSource::Fixed(128.0)));
        assert_eq!(" Audio ".parse(), Ok(TempoSource::Sound));
        assert!(
            "1000"
                .parse::<TempoSource>()
                .unwrap_err()
                .contains("20 to 300")
        );
        assert!("fast".parse::<TempoSource>().unwrap_err().contains("audio"));
        assert_eq!(TempoSource::Sound.initial(), 120.0);
    }

    #[test]
    fn taps_half_a_second_apart_are_120_bpm_anchored_on_the_last() {
        let mut tap = TapTempo::default();
        assert_eq!(tap.tap(10.0), None);
        let t = tap.tap(10.5).unwrap();
        assert!((t.bpm - 120.0).abs() < 1e-9);
        tap.tap(11.0);
        let t = tap.tap(11.52).unwrap();
        assert!((t.bpm - 60.0 / (1.52 / 3.0)).abs() < 1e-9);
        assert_eq!(t.anchor, 11.52);
        assert_eq!(t.beat(11.52), 0.0);
        assert!(
            (Tempo {
                bpm: 120.0,
                anchor: 1.0
            }
            .beat(2.5)
                - 3.0)
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn a_pause_starts_a_new_tempo() {
        let mut tap = TapTempo::default();
        tap.tap(0.0);
        tap.tap(0.5);
        assert_eq!(tap.tap(5.0), None, "3 s later: a first tap again");
        let t = tap.tap(5.25).unwrap();
        assert!((t.bpm - 240.0).abs() < 1e-9);
    }
}
