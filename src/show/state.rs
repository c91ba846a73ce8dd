//! The show's UI-facing state, as resources: what the controls (keys, OSC, MIDI, the
//! Daydream panel) write and what the overlay and the status report read. It sits below
//! all of them, so none has to reach into another: control writes here, the overlay and
//! status read here. The stages' own state stays with them (freeze in [`crate::video`],
//! the master level with the effects, the crossfader with the compositor).

use std::path::PathBuf;
use std::time::Instant;

use bevy::prelude::*;

use crate::daydream::cues::CueList;
use crate::midi_map::{MidiMapping, MidiTarget};

/// The state of the show controls, for the overlay.
#[derive(Resource, Debug, Clone)]
pub struct ShowState {
    /// Level the master is heading to (0 black, 1 full).
    pub target: f32,
    /// Fade speed, levels per second.
    pub(super) speed: f32,
    /// Where screenshots go.
    pub screenshot_dir: PathBuf,
    /// The last screenshot written, once it is complete on disk (or why it failed).
    pub last_screenshot: Option<String>,
    /// `--monitor`.
    pub monitor: Option<usize>,
    /// The window's size before fullscreen, restored when leaving it.
    pub(super) windowed_size: Option<UVec2>,
}

/// Set by the overlay while egui wants the keyboard (typing a preset name), so shortcuts
/// do not fire; always set in kiosk mode (`--kiosk`), where no key reaches the show.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct KeyboardCaptured(pub bool);

/// Whether the overlay is shown (F1); panels beside it follow it.
#[derive(Resource, Debug, Clone, Copy)]
pub struct OverlayShown(pub bool);

/// CPU time spent building the overlay, per frame.
#[derive(Resource, Debug, Default, Clone, Copy)]
pub struct UiTiming {
    /// Last frame, milliseconds.
    pub last_ms: f64,
    /// Exponential mean, milliseconds.
    pub mean_ms: f64,
    /// Worst frame so far, milliseconds.
    pub max_ms: f64,
    /// Frames measured.
    pub frames: u64,
}

/// OSC and MIDI counters for the status line and `--stats-json`.
#[derive(Resource, Debug, Clone, Default, serde::Serialize)]
pub struct ControlReport {
    /// OSC messages received.
    pub osc_received: u64,
    /// OSC messages applied.
    pub osc_applied: u64,
    /// OSC messages ignored: unknown address, wrong type, no such effect or parameter.
    pub osc_rejected: u64,
    /// OSC packets dropped because their sender is outside `--osc-allow`.
    pub osc_denied: u64,
    /// OSC messages dropped because more came than the show could take (a flood).
    pub osc_dropped: u64,
    /// HTTP requests answered (`--http`).
    pub http_requests: u64,
    /// HTTP requests refused for a missing or wrong token.
    pub http_unauthorized: u64,
    /// HTTP requests refused because the show's queue was full (a flood).
    pub http_busy: u64,
    /// OSC messages that came over HTTP (`POST /api/osc`) to the frame loop.
    pub http_osc: u64,
    /// MIDI messages Lucid acts on, received (notes, CCs, clock ticks).
    pub midi_received: u64,
    /// MIDI messages a mapping turned into a change.
    pub midi_applied: u64,
    /// The tempo MIDI clock gives, when a clock is running.
    pub midi_clock_bpm: Option<f64>,
}

/// The MIDI mappings in force: loaded with presets, learned in the overlay, saved with
/// presets.
#[derive(Resource, Debug, Clone, Default)]
pub struct MidiMappings(pub Vec<MidiMapping>);

/// The sound mappings in force: loaded with presets, saved with presets.
#[derive(Resource, Debug, Clone, Default)]
pub struct AudioMappings(pub Vec<crate::audio_map::AudioMapping>);

/// MIDI learn: the target the next moved control is mapped to (set by the overlay).
#[derive(Resource, Debug, Clone, Default)]
pub struct MidiLearn {
    /// What the next control will drive, and since when it waits.
    pub waiting: Option<(MidiTarget, Instant)>,
    /// The last mapping learned, for the overlay.
    pub learned: Option<String>,
}

/// The cue list, when `--cues` gave one.
#[derive(Resource, Debug, Clone, Default)]
pub struct Cues(pub CueList);
