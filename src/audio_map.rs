//! The sound as a controller, as data: which measure of the show's sound drives what
//! (saved with presets beside the MIDI mappings, with the same targets and curves). Plain
//! data, like [`crate::midi_map`], so the files that save mappings need not reach into the
//! control module, which applies them.

use serde::{Deserialize, Serialize};

pub use crate::midi_map::{Curve, MidiTarget};

/// A measure of the sound a mapping follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AudioInput {
    /// The level, 0..1 over -60..0 dBFS.
    Level,
    /// 20-250 Hz.
    Bass,
    /// 250 Hz-2 kHz.
    LowMid,
    /// 2-6 kHz.
    HighMid,
    /// 6-20 kHz.
    Treble,
    /// A hit: 1 at the frame it starts, else 0 (give it a `release` to make it a decay).
    Onset,
}

impl AudioInput {
    /// Every input, in the order the overlay lists them.
    pub const ALL: [AudioInput; 6] = [
        AudioInput::Level,
        AudioInput::Bass,
        AudioInput::LowMid,
        AudioInput::HighMid,
        AudioInput::Treble,
        AudioInput::Onset,
    ];
}

/// One mapping, saved with presets: like a MIDI CC's, the input's 0..1 travels the
/// target's `from..to` (0..1 of the parameter's range) through its curve; switches turn on
/// above half; triggers fire on a hit (or on rising past half).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioMapping {
    /// What it follows.
    pub input: AudioInput,
    /// What it drives.
    pub target: MidiTarget,
    /// Seconds to rise to a louder input (0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attack: f32,
    /// Seconds to fall to a quieter one (0: at once).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub release: f32,
}

impl AudioMapping {
    /// Why a hand-written mapping cannot be used: times outside 0..60 s, or a range
    /// outside 0..1 (it is 0..1 of the parameter's range, as in MIDI mappings, not the
    /// parameter's own units).
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [("attack", self.attack), ("release", self.release)] {
            if !(v.is_finite() && (0.0..=60.0).contains(&v)) {
                return Err(format!(
                    "audio mapping of {:?}: {name} must be 0 to 60 seconds, got {v}",
                    self.input
                ));
            }
        }
        if let MidiTarget::Param {
            param, from, to, ..
        } = &self.target
        {
            for (name, v) in [("from", from), ("to", to)] {
                if !(v.is_finite() && (0.0..=1.0).contains(v)) {
                    return Err(format!(
                        "audio mapping of {:?} to {param:?}: {name} is {v}, but from and to \
                         are 0..1 of the parameter's range, as in MIDI mappings (for a \
                         -1..1 parameter, -0.5..0.5 is from: 0.25, to: 0.75)",
                        self.input
                    ));
                }
            }
        }
        Ok(())
    }
}

fn is_zero(v: &f32) -> bool {
    *v == 0.0
}
