//! One validated configuration for a run, built once from the command line and the files it
//! names (scene, preset, cues, the user's effects), as ripgrep builds its `HiArgs` from
//! clap's arguments. Every usage error (exit 2) is found while it is built, before anything
//! starts; the library below takes a [`Config`] and never the command line.
//!
//! - [`build`]: [`Config::from_args`], the checks on the flags' values.
//! - [`files`]: the scene, preset and effect chains, checked against the effect catalog.

mod build;
mod files;

use std::path::PathBuf;
use std::time::Duration;

use crate::compositor::{Crossfader, LayerSpec};
pub use crate::control::plugin::ControlConfig;
use crate::daydream::DaydreamOptions;
use crate::daydream::cues::CueList;
use crate::decode::DecodeOptions;
use crate::effects::EffectCatalog;
use crate::effects::chain::EffectChain;
use crate::output::OutputConfig;
use crate::source::SourceSpec;

/// What this invocation does: a listing, or a show.
pub enum Invocation {
    /// `--list-osc`: Lucid's OSC addresses.
    ListOsc,
    /// `--list-midi`: the MIDI input ports.
    ListMidi,
    /// `--list-audio`: the sound devices.
    ListAudio,
    /// `--list-effects`: the effects of this catalog.
    ListEffects(EffectCatalog),
    /// `--check-effects`: whether each effect of this catalog compiles.
    CheckEffects(EffectCatalog),
    /// Play.
    Run(Box<Config>),
}

/// Everything a run needs, checked.
pub struct Config {
    /// What to play.
    pub source: SourceChoice,
    /// How the sources are opened and decoded (the `--url` video's and the layers').
    pub decode: DecodeOptions,
    /// Size, pacing and timing of the picture.
    pub playback: PlaybackConfig,
    /// The effect catalog and the master chain.
    pub effects: EffectsConfig,
    /// The compositor's layers and crossfader.
    pub layers: LayersConfig,
    /// `--record`, `--pipe`, `--output` and the encoder settings.
    pub outputs: OutputConfig,
    /// OSC and MIDI.
    pub control: ControlConfig,
    /// `--cues` for a Daydream stream.
    pub cues: Option<CueList>,
    /// The window and its overlay; `None` headless (`--no-preview`).
    pub window: Option<WindowConfig>,
    /// `--stats-json`.
    pub stats_json: Option<PathBuf>,
    /// `--state FILE`.
    pub state: Option<PathBuf>,
    /// `--schedule`: the hours the show is open.
    pub schedule: Option<crate::schedule::ScheduleConfig>,
    /// `--http` and its token.
    pub remote: Option<crate::remote::RemoteConfig>,
    /// The service manager that started Lucid (`NOTIFY_SOCKET`), if one listens.
    pub service: Option<crate::service::ServiceConfig>,
    /// `--audio-in`: what the analysis listens to instead of the show's sound.
    pub analysis_input: Option<crate::sound::AnalysisInput>,
    /// `--audio-out`: the playback device, by name.
    pub audio_out: Option<String>,
}

/// What plays at the bottom.
pub enum SourceChoice {
    /// `--url` (or the scene's source, or the test pattern), resolved.
    Play(SourceSpec),
    /// A Daydream stream to attach to or create; it says what to play once attached.
    Daydream(DaydreamOptions),
}

/// Size, pacing and timing.
#[derive(Debug, Clone, Copy)]
pub struct PlaybackConfig {
    /// `--width`/`--height` as given (a missing side follows the stream's aspect ratio).
    pub requested: (Option<u32>, Option<u32>),
    /// `--latency`: the live HLS latency target.
    pub latency: Option<Duration>,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--realtime`.
    pub realtime: bool,
    /// `--fps`: the output's own frame rate.
    pub fps: Option<f64>,
}

/// The effects.
pub struct EffectsConfig {
    /// The built-in effects and the user's folder.
    pub catalog: EffectCatalog,
    /// The master chain: the scene's, the preset's, then `--effect`'s.
    pub chain: EffectChain,
    /// `--bpm`: a tempo, or the sound's.
    pub tempo: crate::effects::tempo::TempoSource,
}

/// The compositor.
pub struct LayersConfig {
    /// The scene's layers, then `--layer`'s, each with its own chain.
    pub specs: Vec<LayerSpec>,
    /// The crossfader as the show starts.
    pub fader: Crossfader,
    /// The bottom source as the user named it (saved with a scene).
    pub scene_source: Option<String>,
    /// The layer whose sound the show has (`--audio-from N`, 0-based), if one.
    pub sound: Option<usize>,
    /// `--transition`: the ISF transition the crossfader plays.
    pub transition: Option<crate::effects::chain::EffectInstance>,
}

/// Whose sound the show has (`--audio-from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SoundFrom {
    /// The `--url` source's.
    Url,
    /// A layer's (0-based).
    Layer(usize),
    /// None.
    None,
}

/// The window.
#[derive(Debug, Clone)]
pub struct WindowConfig {
    /// Show the overlay at start (no `--hide-ui`).
    pub overlay_visible: bool,
    /// `--fullscreen` (always, with `--kiosk`).
    pub fullscreen: bool,
    /// `--kiosk`: no key, click or close request reaches the show; cursor and overlay
    /// hidden.
    pub kiosk: bool,
    /// `--monitor`.
    pub monitor: Option<usize>,
    /// `--fade`.
    pub fade: Duration,
    /// Where screenshots go.
    pub screenshot_dir: PathBuf,
    /// Where presets are listed and saved.
    pub presets_dir: Option<PathBuf>,
}

/// Lucid's per-user configuration folder (`$XDG_CONFIG_HOME/lucid`, else `~/.config/lucid`).
pub fn config_root() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("lucid"))
}

/// The per-user configuration folder for `leaf` (`effects`, `presets`).
pub fn config_dir(leaf: &str) -> Option<PathBuf> {
    config_root().map(|root| root.join(leaf))
}
