//! The sound as a controller (pure): each [`AudioMapping`] follows one measure of the
//! show's sound through its attack/release envelope, on stream time (so a render moves the
//! same way twice), and asks for the same actions a MIDI CC would: a parameter travels its
//! range, a switch turns on above half, a trigger fires on a hit.

pub use crate::audio_map::{AudioInput, AudioMapping};

use super::{ControlAction, EffectRef, Switch};
use crate::midi_map::MidiTarget;

/// The sound's measures at one frame, as mappings read them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heard {
    /// Stream seconds of the frame.
    pub time: f64,
    /// Level, 0..1.
    pub level: f32,
    /// Bass, low mids, high mids, treble, 0..1.
    pub bands: [f32; 4],
    /// A hit started since the previous frame.
    pub onset: bool,
}

impl Heard {
    /// The value of `input`, 0..1.
    pub fn value(&self, input: AudioInput) -> f32 {
        match input {
            AudioInput::Level => self.level,
            AudioInput::Bass => self.bands[0],
            AudioInput::LowMid => self.bands[1],
            AudioInput::HighMid => self.bands[2],
            AudioInput::Treble => self.bands[3],
            AudioInput::Onset => f32::from(u8::from(self.onset)),
        }
    }
}

/// One mapping's envelope and what it last asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Follower {
    value: f32,
    time: Option<f64>,
    above: bool,
    sent: Option<f32>,
}

impl Follower {
    /// The envelope's value after this frame.
    pub fn value(&self) -> f32 {
        self.value
    }

    /// Follows `mapping`'s input at this frame; the action it asks for, if any (a
    /// parameter only when its value moved, a switch only when it crossed half, a trigger
    /// on a hit or on rising past half).
    pub fn follow(&mut self, mapping: &AudioMapping, heard: &Heard) -> Option<ControlAction> {
        let input = heard.value(mapping.input).clamp(0.0, 1.0);
        let dt = self.time.map_or(0.0, |t| (heard.time - t).max(0.0)) as f32;
        if self.time.is_some_and(|t| heard.time < t) {
            // A new timeline (a loop, a discontinuity): start from the input.
            self.value = input;
        } else {
            let seconds = if input > self.value {
                mapping.attack
            } else {
                mapping.release
            };
            self.value = if seconds <= 0.0 || self.time.is_none() {
                input
            } else {
                // An exponential approach: 63% of the way in `seconds`.
                self.value + (input - self.value) * (1.0 - (-dt / seconds).exp())
            };
        }
        self.time = Some(heard.time);
        let was_above = std::mem::replace(&mut self.above, self.value >= 0.5);
        let rose = self.above && !was_above;
        let switch = |above: bool| if above { Switch::On } else { Switch::Off };
        match &mapping.target {
            MidiTarget::Param {
                effect,
                param,
                from,
                to,
                curve,
            } => {
                let x = from + curve.shape(self.value) * (to - from);
                if self.sent.is_some_and(|s| (s - x).abs() < 1e-4) {
                    return None;
                }
                self.sent = Some(x);
                Some(ControlAction::param_at(*effect, param, x))
            }
            target @ (MidiTarget::Enabled { .. } | MidiTarget::Blackout | MidiTarget::Freeze) => {
                if self.above == was_above && self.sent.is_some() {
                    return None;
                }
                self.sent = Some(f32::from(u8::from(self.above)));
                let on = switch(self.above);
                Some(match target {
                    MidiTarget::Enabled { effect } => ControlAction::EffectEnabled {
                        effect: EffectRef::Index(*effect),
                        on,
                    },
                    MidiTarget::Blackout => ControlAction::Blackout(on),
                    _ => ControlAction::Freeze(on),
                })
            }
            trigger @ (MidiTarget::CueNext | MidiTarget::Tap) => {
                let fire = if mapping.input == AudioInput::Onset {
                    heard.onset
                } else {
                    rose
                };
                fire.then_some(match trigger {
                    MidiTarget::Tap => ControlAction::Tap,
                    _ => ControlAction::CueNext,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Amount;
    use crate::midi_map::Curve;

    fn param(input: AudioInput, attack: f32, release: f32) -> AudioMapping {
        AudioMapping {
            input,
            target: MidiTarget::Param {
                effect: 0,
                param: "brightness".into(),
                from: 0.25,
                to: 0.75,
                curve: Curve::Linear,
            },
            attack,
            release,
        }
    }

    fn heard(time: f64, level: f32, onset: bool) -> Heard {
        Heard {
            time,
            level,
            bands: [level, 0.0, 0.0, 0.0],
            onset,
        }
    }

    fn amount(action: Option<ControlAction>) -> Option<f32> {
        match action? {
            ControlAction::EffectParam {
                amount: Amount::Normalized(v),
                ..
            } => Some(v[0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_level_travels_the_range_and_an_unchanged_value_asks_nothing() {
        let m = param(AudioInput::Level, 0.0, 0.0);
        let mut f = Follower::default();
        assert_eq!(amount(f.follow(&m, &heard(0.0, 0.0, false))), Some(0.25));
        assert_eq!(amount(f.follow(&m, &heard(0.033, 1.0, false))), Some(0.75));
        assert_eq!(f.follow(&m, &heard(0.066, 1.0, false)), None);
        assert_eq!(amount(f.follow(&m, &heard(0.1, 0.5, false))), Some(0.5));
    }

    #[test]
    fn attack_and_release_take_their_time_on_stream_time() {
        let m = param(AudioInput::Bass, 0.1, 0.5);
        let mut f = Follower::default();
        f.follow(&m, &heard(0.0, 0.0, false));
        f.follow(&m, &heard(0.1, 1.0, false));
        // One attack time: 63% of the way.
        assert!((f.value() - 0.632).abs() < 0.01, "{}", f.value());
        f.follow(&m, &heard(1.0, 1.0, false));
        assert!(f.value() > 0.99);
        f.follow(&m, &heard(1.5, 0.0, false));
        assert!((f.value() - 0.368).abs() < 0.01, "{}", f.value());
        // The same frames at the same stream times give the same values, however late.
        let mut again = Follower::default();
        for (t, v) in [(0.0, 0.0), (0.1, 1.0), (1.0, 1.0), (1.5, 0.0)] {
            again.follow(&m, &heard(t, v, false));
        }
        assert_eq!(again, f);
    }

    #[test]
    fn an_onset_with_release_is_a_decaying_pulse() {
        let m = param(AudioInput::Onset, 0.0, 0.2);
        let mut f = Follower::default();
        f.follow(&m, &heard(0.0, 0.0, true));
        assert_eq!(f.value(), 1.0);
        f.follow(&m, &heard(0.2, 0.0, false));
        assert!((f.value() - 0.368).abs() < 0.01);
    }

    #[test]
    fn switches_flip_on_crossing_half_and_triggers_fire_on_hits() {
        let blackout = AudioMapping {
            input: AudioInput::Level,
            target: MidiTarget::Blackout,
            attack: 0.0,
            release: 0.0,
        };
        let mut f = Follower::default();
        assert_eq!(
            f.follow(&blackout, &heard(0.0, 0.2, false)),
            Some(ControlAction::Blackout(Switch::Off))
        );
        assert_eq!(f.follow(&blackout, &heard(0.1, 0.3, false)), None);
        assert_eq!(
            f.follow(&blackout, &heard(0.2, 0.9, false)),
            Some(ControlAction::Blackout(Switch::On))
        );
        assert_eq!(f.follow(&blackout, &heard(0.3, 0.8, false)), None);
        let tap = AudioMapping {
            input: AudioInput::Onset,
            target: MidiTarget::Tap,
            attack: 0.0,
            release: 0.0,
        };
        let mut f = Follower::default();
        assert_eq!(f.follow(&tap, &heard(0.0, 0.0, false)), None);
        assert_eq!(
            f.follow(&tap, &heard(0.1, 0.0, true)),
            Some(ControlAction::Tap)
        );
        assert_eq!(f.follow(&tap, &heard(0.2, 0.0, false)), None);
    }
}
