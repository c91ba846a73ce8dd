//! MIDI (`--midi PORT`, the `midir` crate on ALSA): raw messages parsed into events,
//! mappings from controls to the show (CC to a parameter with range and curve, note to a
//! toggle or a trigger), MIDI clock into a tempo, and the input port itself.
//!
//! Mappings are saved with presets (`Preset::midi`); the overlay learns them (click Learn
//! beside a parameter, move a control).

use std::time::Duration;

use crossbeam_channel::{Receiver, bounded};
use tracing::info;

pub use crate::midi_map::{Curve, MidiControl, MidiEvent, MidiMapping, MidiTarget};

use super::{ControlAction, EffectRef, Switch};
use crate::error::{LucidError, Result};

impl MidiMapping {
    /// The action an event of this mapping's control asks for.
    pub fn action(&self, event: &MidiEvent) -> Option<ControlAction> {
        if MidiControl::of(event) != Some(self.control) {
            return None;
        }
        // 0..1 for a CC; a note is "pressed".
        let level = match *event {
            MidiEvent::Cc { value, .. } => Some(f32::from(value) / 127.0),
            _ => None,
        };
        let switch = || match level {
            Some(v) if v >= 0.5 => Switch::On,
            Some(_) => Switch::Off,
            None => Switch::Toggle,
        };
        Some(match &self.target {
            MidiTarget::Param {
                effect,
                param,
                from,
                to,
                curve,
            } => {
                let x = curve.shape(level.unwrap_or(1.0));
                ControlAction::param_at(*effect, param, from + x * (to - from))
            }
            MidiTarget::Enabled { effect } => ControlAction::EffectEnabled {
                effect: EffectRef::Index(*effect),
                on: switch(),
            },
            MidiTarget::Blackout => ControlAction::Blackout(switch()),
            MidiTarget::Freeze => ControlAction::Freeze(switch()),
            // Triggers fire on a press, or a CC crossing into its top half.
            MidiTarget::CueNext if switch() != Switch::Off => ControlAction::CueNext,
            MidiTarget::Tap if switch() != Switch::Off => ControlAction::Tap,
            MidiTarget::CueNext | MidiTarget::Tap => return None,
        })
    }
}

/// MIDI clock into a tempo: 24 ticks a beat, averaged over the last beat's ticks.
#[derive(Debug, Default, Clone)]
pub struct MidiClock {
    ticks: std::collections::VecDeque<f64>,
}

impl MidiClock {
    /// Ticks a beat.
    pub const PPQN: usize = 24;

    /// A tick at `time` seconds; the tempo once a beat of ticks has come.
    pub fn tick(&mut self, time: f64) -> Option<f64> {
        // A gap of over a second is a stopped clock: start again.
        if self.ticks.back().is_some_and(|last| time - last > 1.0) {
            self.ticks.clear();
        }
        self.ticks.push_back(time);
        if self.ticks.len() > Self::PPQN + 1 {
            self.ticks.pop_front();
        }
        if self.ticks.len() <= Self::PPQN {
            return None;
        }
        let span = self.ticks.back()? - self.ticks.front()?;
        let bpm = 60.0 / span;
        crate::effects::tempo::BPM_RANGE
            .contains(&bpm)
            .then_some(bpm)
    }
}

/// Why ALSA may have no MIDI: its sequencer device is missing (no `snd-seq` module, or a
/// container without /dev/snd).
struct NoSeqHint;

const NO_SEQ_HINT: NoSeqHint = NoSeqHint;

impl NoSeqHint {
    fn get(&self) -> &'static str {
        if std::path::Path::new("/dev/snd/seq").exists() {
            ""
        } else {
            " (no ALSA sequencer at /dev/snd/seq: `sudo modprobe snd-seq`, or give a container /dev/snd)"
        }
    }
}

/// A raw MIDI message with its arrival time (seconds since the port opened).
pub type Timed = (f64, Vec<u8>);

/// The MIDI input ports, by name.
pub fn ports() -> Result<Vec<String>> {
    let input = midir::MidiInput::new("lucid").map_err(|e| {
        LucidError::Usage(format!(
            "MIDI is not available here: {e}{}",
            NO_SEQ_HINT.get()
        ))
    })?;
    Ok(input
        .ports()
        .iter()
        .filter_map(|p| input.port_name(p).ok())
        .collect())
}

/// An open MIDI input; dropping it closes the port.
pub struct MidiInput {
    _connection: midir::MidiInputConnection<()>,
}

impl MidiInput {
    /// Opens the port named `wanted` (its index in `--list-midi`, or part of its name);
    /// messages come out of the returned channel.
    pub fn open(wanted: &str) -> Result<(MidiInput, Receiver<Timed>)> {
        let mut input = midir::MidiInput::new("lucid").map_err(|e| {
            LucidError::Usage(format!(
                "--midi {wanted}: MIDI is not available here: {e}{}",
                NO_SEQ_HINT.get()
            ))
        })?;
        input.ignore(midir::Ignore::Sysex | midir::Ignore::ActiveSense);
        let ports = input.ports();
        let names: Vec<String> = ports
            .iter()
            .map(|p| input.port_name(p).unwrap_or_default())
            .collect();
        let index = wanted
            .parse::<usize>()
            .ok()
            .filter(|i| *i < ports.len())
            .or_else(|| {
                let lower = wanted.to_lowercase();
                names.iter().position(|n| n.to_lowercase().contains(&lower))
            });
        let Some(index) = index else {
            return Err(LucidError::Usage(format!(
                "--midi {wanted}: no such MIDI input (there are: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            )));
        };
        let (tx, rx) = bounded::<Timed>(4096);
        let connection = input
            .connect(
                &ports[index],
                "lucid-in",
                move |micros, bytes, _| {
                    // A full queue drops the message: the app reads them every frame.
                    let _ = tx.try_send((micros as f64 / 1e6, bytes.to_vec()));
                },
                (),
            )
            .map_err(|e| LucidError::Usage(format!("--midi {wanted}: {e}")))?;
        info!("MIDI: listening to {}", names[index]);
        Ok((
            MidiInput {
                _connection: connection,
            },
            rx,
        ))
    }
}

/// How long a learn waits for a control to move.
pub const LEARN_TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Amount;

    #[test]
    fn raw_messages_parse() {
        assert_eq!(
            MidiEvent::parse(&[0xB3, 7, 127]),
            Some(MidiEvent::Cc {
                channel: 3,
                cc: 7,
                value: 127
            })
        );
        assert_eq!(
            MidiEvent::parse(&[0x90, 60, 100]),
            Some(MidiEvent::NoteOn {
                channel: 0,
                note: 60
            })
        );
        assert_eq!(MidiEvent::parse(&[0x90, 60, 0]), None, "a note off");
        assert_eq!(MidiEvent::parse(&[0x80, 60, 64]), None);
        assert_eq!(MidiEvent::parse(&[0xF8]), Some(MidiEvent::Clock));
        assert_eq!(MidiEvent::parse(&[0xFA]), Some(MidiEvent::Start));
        assert_eq!(MidiEvent::parse(&[0xB0, 7]), None, "cut short");
        assert_eq!(MidiEvent::parse(&[]), None);
    }

    #[test]
    fn a_cc_spans_its_range_through_its_curve() {
        let mapping = MidiMapping {
            control: MidiControl::Cc { channel: 0, cc: 1 },
            target: MidiTarget::Param {
                effect: 0,
                param: "amount".into(),
                from: 0.2,
                to: 0.6,
                curve: Curve::Exponential,
            },
        };
        let at = |value| match mapping.action(&MidiEvent::Cc {
            channel: 0,
            cc: 1,
            value,
        }) {
            Some(ControlAction::EffectParam {
                amount: Amount::Normalized(v),
                ..
            }) => v[0],
            other => panic!("{other:?}"),
        };
        assert!((at(0) - 0.2).abs() < 1e-6);
        assert!((at(127) - 0.6).abs() < 1e-6);
        // Half way up the knob is a quarter of the way up the range, squared.
        let half = 0.2 + (63.5f32 / 127.0).powi(2) * 0.4;
        assert!((at(64) - half).abs() < 0.01, "{}", at(64));
        // Another controller or channel is not this mapping's.
        assert_eq!(
            mapping.action(&MidiEvent::Cc {
                channel: 1,
                cc: 1,
                value: 5
            }),
            None
        );
    }

    #[test]
    fn notes_toggle_and_trigger() {
        let pad = MidiControl::Note {
            channel: 9,
            note: 36,
        };
        let press = MidiEvent::NoteOn {
            channel: 9,
            note: 36,
        };
        let toggle = MidiMapping {
            control: pad,
            target: MidiTarget::Enabled { effect: 2 },
        };
        assert_eq!(
            toggle.action(&press),
            Some(ControlAction::EffectEnabled {
                effect: EffectRef::Index(2),
                on: Switch::Toggle
            })
        );
        let cue = MidiMapping {
            control: pad,
            target: MidiTarget::CueNext,
        };
        assert_eq!(cue.action(&press), Some(ControlAction::CueNext));
        let blackout_cc = MidiMapping {
            control: MidiControl::Cc { channel: 0, cc: 64 },
            target: MidiTarget::Blackout,
        };
        let cc = |value| MidiEvent::Cc {
            channel: 0,
            cc: 64,
            value,
        };
        assert_eq!(
            blackout_cc.action(&cc(127)),
            Some(ControlAction::Blackout(Switch::On))
        );
        assert_eq!(
            blackout_cc.action(&cc(0)),
            Some(ControlAction::Blackout(Switch::Off))
        );
    }

    #[test]
    fn midi_clock_gives_the_tempo() {
        let mut clock = MidiClock::default();
        // 120 bpm: a beat every 0.5 s, a tick every 0.5/24 s.
        let tick = 0.5 / 24.0;
        let mut bpm = None;
        for i in 0..48 {
            bpm = clock.tick(i as f64 * tick).or(bpm);
        }
        assert!((bpm.unwrap() - 120.0).abs() < 1e-6, "{bpm:?}");
        // A stopped clock starts over rather than averaging across the gap.
        assert_eq!(clock.tick(100.0), None);
    }

    #[test]
    fn a_preset_with_mappings_reads_as_the_readme_writes_it() {
        let preset = crate::effects::chain::Preset::from_ron(
            r#"(effects: [(effect: "tint", params: {"amount": 0.0})],
 midi: [(control: Cc(channel: 0, cc: 21),
         target: Param(effect: 0, param: "amount", from: 0.0, to: 1.0, curve: Linear)),
        (control: Note(channel: 9, note: 36), target: Blackout)])"#,
        )
        .unwrap();
        assert_eq!(preset.midi.len(), 2);
        assert_eq!(preset.midi[1].target, MidiTarget::Blackout);
        // A preset from before MIDI still reads, with no mappings.
        let old = crate::effects::chain::Preset::from_ron(r#"(effects: [])"#).unwrap();
        assert!(old.midi.is_empty());
        assert!(!old.to_ron().contains("midi"), "no empty list written");
    }

    #[test]
    fn mappings_survive_a_preset_round_trip() {
        let mappings = vec![MidiMapping {
            control: MidiControl::Cc { channel: 0, cc: 21 },
            target: MidiTarget::Param {
                effect: 1,
                param: "hue".into(),
                from: 0.0,
                to: 1.0,
                curve: Curve::Logarithmic,
            },
        }];
        let text = ron::to_string(&mappings).unwrap();
        let back: Vec<MidiMapping> = ron::from_str(&text).unwrap();
        assert_eq!(back, mappings);
    }
}
