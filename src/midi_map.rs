//! MIDI as data: the messages Lucid acts on and the mappings from a control to the show
//! (saved with presets and scenes, learned in the overlay). Plain data with no Lucid
//! imports, so the files that save mappings and the show state that holds them need not
//! reach up into the control module, which applies them.

use serde::{Deserialize, Serialize};

/// One MIDI message Lucid acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MidiEvent {
    /// Control change: channel 0-15, controller, value 0-127.
    Cc {
        /// Channel, 0-15.
        channel: u8,
        /// Controller number.
        cc: u8,
        /// Value, 0-127.
        value: u8,
    },
    /// Note on with a velocity above 0 (note on at 0 is a note off).
    NoteOn {
        /// Channel, 0-15.
        channel: u8,
        /// Note number.
        note: u8,
    },
    /// A MIDI clock tick (24 a beat).
    Clock,
    /// Start or continue: the beat restarts.
    Start,
}

impl MidiEvent {
    /// Parses a raw message; `None` for what Lucid ignores.
    pub fn parse(bytes: &[u8]) -> Option<MidiEvent> {
        let status = *bytes.first()?;
        match (status & 0xF0, status) {
            (_, 0xF8) => Some(MidiEvent::Clock),
            (_, 0xFA | 0xFB) => Some(MidiEvent::Start),
            (0xB0, _) => Some(MidiEvent::Cc {
                channel: status & 0x0F,
                cc: *bytes.get(1)? & 0x7F,
                value: *bytes.get(2)? & 0x7F,
            }),
            (0x90, _) if bytes.get(2).is_some_and(|v| *v > 0) => Some(MidiEvent::NoteOn {
                channel: status & 0x0F,
                note: *bytes.get(1)? & 0x7F,
            }),
            _ => None,
        }
    }
}

/// The control a mapping listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum MidiControl {
    /// A knob or fader.
    Cc {
        /// Channel, 0-15.
        channel: u8,
        /// Controller number.
        cc: u8,
    },
    /// A pad or key.
    Note {
        /// Channel, 0-15.
        channel: u8,
        /// Note number.
        note: u8,
    },
}

impl MidiControl {
    /// The control an event comes from.
    pub fn of(event: &MidiEvent) -> Option<MidiControl> {
        match *event {
            MidiEvent::Cc { channel, cc, .. } => Some(MidiControl::Cc { channel, cc }),
            MidiEvent::NoteOn { channel, note } => Some(MidiControl::Note { channel, note }),
            MidiEvent::Clock | MidiEvent::Start => None,
        }
    }
}

/// How a knob's travel maps onto the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Curve {
    /// Even.
    #[default]
    Linear,
    /// Fine control at the bottom (squared).
    Exponential,
    /// Fine control at the top (square root).
    Logarithmic,
}

impl Curve {
    /// Where `x` (0..1 of the travel) lands, 0..1.
    pub fn shape(self, x: f32) -> f32 {
        match self {
            Curve::Linear => x,
            Curve::Exponential => x * x,
            Curve::Logarithmic => x.sqrt(),
        }
    }
}

/// What a mapped control does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum MidiTarget {
    /// A CC sets an effect parameter (or `mix`) over `from..to` of its range (0..1 each),
    /// through `curve`. A note sets it to `to`.
    Param {
        /// The effect's place in the chain, from 0.
        effect: usize,
        /// Parameter name, or `mix`.
        param: String,
        /// Bottom of the control's travel, 0..1 of the range.
        from: f32,
        /// Top of the control's travel, 0..1 of the range.
        to: f32,
        /// The travel's shape.
        curve: Curve,
    },
    /// A note flips the effect on or off; a CC turns it on above half.
    Enabled {
        /// The effect's place in the chain, from 0.
        effect: usize,
    },
    /// Blackout, flipped by a note; on above half for a CC.
    Blackout,
    /// Freeze, likewise.
    Freeze,
    /// The next cue.
    CueNext,
    /// A tempo tap.
    Tap,
}

/// One mapping, saved with presets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MidiMapping {
    /// The control.
    pub control: MidiControl,
    /// What it does.
    pub target: MidiTarget,
}
