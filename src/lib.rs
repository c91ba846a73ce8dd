//! Lucid: live AI-generated video (Daydream StreamDiffusion via Livepeer HLS, or any FFmpeg
//! input) decoded on its own thread, uploaded as GPU textures in a Bevy app, rendered to an
//! offscreen canvas and shown in a window or written to files and pipes.
//!
//! The stages, each in its own module and talking only through channels or resources:
//! [`source`] (what to play, and the HLS client) -> [`decode`] (FFmpeg, hardware first) ->
//! [`video`] (pacing, upload, YUV->RGB on the GPU) -> [`preview`] (the window) and
//! [`output`] (readback, record, pipe, network, virtual camera, images); [`control`] (OSC
//! and MIDI). [`cli`] parses the command line, [`config`] turns it into one checked
//! [`config::Config`], and [`app`] runs it, one plugin per feature; see ARCHITECTURE.md.

// Unsafe code lives only in `decode::hwaccel` (FFmpeg's hwdevice FFI, behind a safe
// API), `output::interrupt` (opening an FFmpeg output with an interrupt callback) and,
// with the `ndi` feature, `output::ndi` (the NDI runtime's C API);
// `unsafe_code` is denied everywhere else by the `[lints]` table in Cargo.toml.

pub mod app;
pub mod audio_map;
pub mod cli;
pub mod compositor;
pub mod config;
pub mod control;
pub mod daydream;
pub mod decode;
pub mod effects;
pub mod error;
pub mod headless;
pub mod lifecycle;
pub mod logging;
pub mod midi_map;
pub mod output;
pub mod overlay;
pub mod persist;
pub mod preview;
pub mod redact;
pub mod remote;
pub mod schedule;
pub mod service;
pub mod show;
pub mod sound;
pub mod source;
pub mod status;
pub mod video;

pub use error::{LucidError, Result};
