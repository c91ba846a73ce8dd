//! The show's sound beyond the outputs: the bus that hands it to every consumer ([`bus`]),
//! its analysis into levels, bands, a spectrum, onsets and a tempo ([`analysis`], pure),
//! sound devices (`--list-audio`, `--audio-in DEVICE`, `--audio-out`: [`device`], cpal;
//! [`playback`] keeps the played sound on the picture), and the Bevy
//! side ([`plugin`]) that measures it at each presented frame's stream time,
//! for effects (`lucid.audio_*`), audio mappings, OSC feedback and the stats.

pub mod analysis;
pub mod bus;
pub mod device;
pub mod playback;
pub mod plugin;

pub use bus::{SoundReport, SoundTap};
pub use plugin::{
    AnalysisInput, AnalysisReport, LayerSoundFeed, PlaybackState, ShowSound, SoundPlugin,
    SoundSystems, SoundTaps,
};
