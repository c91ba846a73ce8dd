//! The command line, and only that: clap's [`Args`] with every flag under its heading.
//! It keeps every flag of the seed's `playback.py` with its meaning. Values whose type
//! knows how to parse itself (`FromStr`: layers, outputs, bitrates, STUN servers) are
//! parsed here; checking the whole, and loading the files the flags name, is
//! the config step's work. Nothing below the command line reads this module.

use std::ffi::OsStr;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use clap::{Parser, ValueEnum};

use crate::compositor::{FaderCurve, LayerSpec};
use crate::effects::tempo::TempoSource;
use crate::output::encode::{Bitrate, EncoderChoice};
use crate::output::{OutputTarget, PipeFormat};
use crate::redact::Redacted;
use crate::source::whep::stun::StunServer;

/// Lucid plays live AI-generated video (Daydream / Livepeer HLS, or any FFmpeg input)
/// through a GPU render path, in a window or headless, and records or pipes what it renders.
#[derive(Debug, Clone, Parser)]
#[command(name = "lucid", version, about, long_about = None)]
pub struct Args {
    /// What to play: an HLS master or media playlist (http/https), a bare Livepeer playback
    /// id, an `https://lvpr.tv/?v=<id>` page, or anything FFmpeg opens (file, rtmp://, srt://).
    /// Without it Lucid plays a built-in moving test pattern.
    #[arg(long, value_name = "URL", help_heading = "Source")]
    pub url: Option<String>,

    /// How long to wait for a stream that is not live yet (404, empty playlist, "stream
    /// open failed"), retrying with backoff; also how long an outage may last.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 180.0,
        help_heading = "Source"
    )]
    pub wait: f64,

    /// Which protocol plays a network --url: `auto` plays WebRTC (WHEP) where the source
    /// has it and falls back to HLS; `webrtc` or `hls` force one (a WHEP path or an
    /// `.m3u8` already says which).
    #[arg(
        long,
        value_name = "PROTOCOL",
        default_value = "auto",
        help_heading = "Source"
    )]
    pub protocol: ProtocolArg,

    /// Livepeer API that answers playback info for a playback id (also a self-hosted
    /// catalyst).
    #[arg(long, value_name = "URL", default_value = crate::source::livepeer::DEFAULT_API, help_heading = "Source")]
    pub livepeer_api: String,

    /// A STUN server for WebRTC, `stun:host[:port]` (repeatable): adds this machine's
    /// public address to the offer. Lucid also asks the host a WHEP endpoint redirects to,
    /// as Livepeer's players do.
    #[arg(long, value_name = "URL", value_parser = FlagValue::<StunServer>::default(), help_heading = "Source")]
    pub ice_server: Vec<StunServer>,

    /// Open no window: render offscreen on a headless schedule (for --record / --pipe).
    #[arg(long, help_heading = "Playback")]
    pub no_preview: bool,

    /// Decode in software only, even when hardware decode is available.
    #[arg(long, help_heading = "Playback")]
    pub force_cpu: bool,

    /// Output width in pixels. Given alone, the height follows the stream's aspect ratio.
    #[arg(long, value_name = "PIXELS", help_heading = "Playback")]
    pub width: Option<u32>,

    /// Output height in pixels. Given alone, the width follows the stream's aspect ratio.
    #[arg(long, value_name = "PIXELS", help_heading = "Playback")]
    pub height: Option<u32>,

    /// The output's own frame rate: the canvas is drawn and every output gets a frame this
    /// many times a second, whatever the sources' rates (each shows its newest frame).
    /// Without it the --url video's frames set the pace (offline: a faster layer's rate; in
    /// a window with layers: the display's refresh rate). Offline renders (a file into files) tick on the video's time, as fast as
    /// the machine allows; otherwise the clock is real time.
    #[arg(long, value_name = "FPS", help_heading = "Playback")]
    pub fps: Option<f64>,

    /// Pace a finite input in real time, skipping frames the machine cannot render in time.
    /// Without it, a file rendered into --record only (no window, no --pipe) renders every
    /// frame, as fast as the machine allows.
    #[arg(long, help_heading = "Playback")]
    pub realtime: bool,

    /// Stop after this many seconds of playback (counted from the first frame shown; in
    /// stream time when rendering offline).
    #[arg(long, value_name = "SECONDS", help_heading = "Playback")]
    pub duration: Option<f64>,

    /// Target latency behind the live edge of a live HLS stream. Default: one segment
    /// duration plus 0.5 s.
    #[arg(long, value_name = "SECONDS", help_heading = "Playback")]
    pub latency: Option<f64>,

    /// Add an effect to the chain, e.g. `--effect color:saturation=1.5,hue=30` or
    /// `--effect tint:color=#ff8800,mix=0.5`. Repeat for more, applied in order, after
    /// those of --preset. `--list-effects` shows the effects and their parameters.
    #[arg(long, value_name = "NAME[:PARAM=VALUE,...]", help_heading = "Effects")]
    pub effect: Vec<String>,

    /// Load an effect chain saved from the overlay (RON).
    #[arg(long, value_name = "FILE", help_heading = "Effects")]
    pub preset: Option<PathBuf>,

    /// Folder of user effects (`*.wgsl`), loaded at start and reloaded when saved.
    /// Default: `$XDG_CONFIG_HOME/lucid/effects` (`~/.config/lucid/effects`).
    #[arg(long, value_name = "DIR", help_heading = "Effects")]
    pub effects_dir: Option<PathBuf>,

    /// Folder the overlay lists and saves presets in. Default: `~/.config/lucid/presets`.
    #[arg(long, value_name = "DIR", help_heading = "Effects")]
    pub presets_dir: Option<PathBuf>,

    /// Print the available effects with their parameters, and exit.
    #[arg(long, help_heading = "Effects")]
    pub list_effects: bool,

    /// Compile every effect (the built-ins and --effects-dir's .wgsl and ISF .fs files) as
    /// the GPU will get it, print `ok NAME` or `error NAME: reason` for each and `N of M
    /// effects load`, and exit (1 when any fails): a linter for effect authors and for CI.
    #[arg(long, help_heading = "Effects")]
    pub check_effects: bool,

    /// The show's tempo in beats per minute (20-300), or `audio` to follow the sound's
    /// hits: effects get `lucid.bpm` and `lucid.beat`. The T key taps a tempo in the window.
    #[arg(
        long,
        value_name = "BPM|audio",
        default_value = "120",
        value_parser = FlagValue::<TempoSource>::default(),
        help_heading = "Effects"
    )]
    pub bpm: TempoSource,

    /// Add a layer above the others (`--url` is the bottom one): any --url form, with
    /// options `SOURCE:opacity=0.5,blend=screen,fit=cover,loop=true,end=fade`. Blend modes:
    /// normal, multiply, screen, overlay, darken, lighten, color-dodge, color-burn,
    /// hard-light, soft-light, difference, exclusion, add. Repeatable, bottom to top.
    #[arg(long, value_name = "SOURCE[:OPTIONS]", value_parser = FlagValue::<LayerSpec>::default(), help_heading = "Layers")]
    pub layer: Vec<LayerSpec>,

    /// Add an effect to layer N's own chain (layers from 1: the scene's, then --layer's),
    /// run on its picture before it is placed and blended, e.g.
    /// `--layer-effect 1:tint:color=#ff0000,amount=1`. Same forms as --effect; repeatable.
    #[arg(long, value_name = "N:NAME[:PARAMS]", help_heading = "Layers")]
    pub layer_effect: Vec<String>,

    /// Load a whole show saved as RON (the overlay's Save scene): the bottom source, the
    /// layers, the crossfader, the master chain and MIDI mappings. --url replaces its
    /// source; --layer, --preset and --effect add to it.
    #[arg(long, value_name = "FILE", help_heading = "Layers")]
    pub scene: Option<PathBuf>,

    /// A timed A/B crossfade: the show starts on bus A and crossfades to bus B over this
    /// many seconds of video; X (or OSC) then crossfades back and forth in the same time
    /// (default 2 s). Layers say their bus with `bus=a|b` (default both).
    #[arg(long, value_name = "SECONDS", help_heading = "Layers")]
    pub crossfade: Option<f64>,

    /// The crossfader's curve: `linear` or `equal-power`.
    #[arg(
        long,
        value_name = "CURVE",
        default_value = "linear",
        help_heading = "Layers"
    )]
    pub crossfade_curve: CurveArg,

    /// An ISF transition (from --effects-dir) the A/B crossfader plays instead of its plain
    /// mix: its startImage is bus A's picture, endImage bus B's, and progress the
    /// crossfader's position after its curve, `NAME[:PARAM=VALUE,...]`.
    #[arg(long, value_name = "NAME", help_heading = "Layers")]
    pub transition: Option<String>,

    /// Record the rendered output (never the UI) as H.264; `.mp4` or `.mkv` picks the container.
    #[arg(long, value_name = "FILE", help_heading = "Outputs")]
    pub record: Option<PathBuf>,

    /// Which source's sound the show has (--record and the network outputs carry it as AAC,
    /// in sync with the picture; the analysis listens to it): `0`, the --url source (the
    /// default), `N`, the Nth layer, or `none`.
    #[arg(long, value_name = "0|N|none", help_heading = "Outputs")]
    pub audio_from: Option<String>,

    /// Replace the --record file if it exists (without it, an existing file is never touched).
    #[arg(long, help_heading = "Outputs")]
    pub overwrite: bool,

    /// Write the rendered frames to stdout as they are presented.
    #[arg(long, value_name = "FORMAT", help_heading = "Outputs")]
    pub pipe: Option<PipeArg>,

    /// Also send the rendered frames to: `rtmp://host/app/key` (or rtmps://),
    /// `srt://host:port`, `udp://host:port` (H.264; a dropped connection is reopened with
    /// backoff), `/dev/videoN` (a v4l2loopback virtual camera), or `frames/%06d.png` or
    /// `.jpg` (every frame as a numbered image, from 1; the folder must exist, --overwrite
    /// replaces images). Repeatable.
    #[arg(long, value_name = "URL|PATTERN", value_parser = FlagValue::<OutputTarget>::default(), help_heading = "Outputs")]
    pub output: Vec<OutputTarget>,

    /// H.264 encoder for --record and network outputs: `auto` uses NVENC where an NVIDIA
    /// driver takes it, VAAPI where a VAAPI device opens, and libx264 otherwise (the log
    /// says which and why).
    #[arg(
        long,
        value_name = "ENCODER",
        default_value = "auto",
        help_heading = "Outputs"
    )]
    pub encoder: EncoderArg,

    /// Bitrate of the H.264 outputs, e.g. `6M` or `4500k`. Default: constant quality for
    /// --record, 6M for network outputs.
    #[arg(long, value_name = "BITS", value_parser = FlagValue::<Bitrate>::default(), help_heading = "Outputs")]
    pub bitrate: Option<Bitrate>,

    /// Keyframe interval of the H.264 outputs, in frames. Default: two seconds' worth.
    #[arg(long, value_name = "FRAMES", help_heading = "Outputs")]
    pub gop: Option<u32>,

    /// Listen for OSC on this UDP port of 127.0.0.1, or on ADDR:PORT (0.0.0.0:9000 for
    /// every interface: controllers on the stage network). `--list-osc` shows the addresses.
    #[arg(long, value_name = "PORT|ADDR:PORT", help_heading = "Control")]
    pub osc: Option<String>,

    /// Take OSC only from senders in this network (CIDR, e.g. 192.168.1.0/24, or one
    /// address); repeatable. Packets from elsewhere are dropped and counted.
    #[arg(long, value_name = "CIDR", help_heading = "Control")]
    pub osc_allow: Vec<String>,

    /// Send changed values (effect parameters, level, freeze) as OSC to HOST:PORT, for
    /// controller apps such as TouchOSC.
    #[arg(long, value_name = "HOST:PORT", help_heading = "Control")]
    pub osc_feedback: Option<String>,

    /// Serve the remote API on ADDR:PORT (or a port on 127.0.0.1): GET /api/status, GET
    /// /metrics (Prometheus), POST /api/osc. A non-loopback address needs --http-token-file.
    #[arg(long, value_name = "ADDR:PORT", help_heading = "Control")]
    pub http: Option<String>,

    /// Every HTTP request must carry `Authorization: Bearer <token>`, the token being this
    /// file's first line (16 characters or more; the file readable by its owner alone).
    #[arg(long, value_name = "FILE", help_heading = "Control")]
    pub http_token_file: Option<PathBuf>,

    /// Print Lucid's OSC addresses, and exit.
    #[arg(long, help_heading = "Control")]
    pub list_osc: bool,

    /// Take MIDI from this input port: its number in --list-midi, or part of its name.
    /// Map controls in the overlay (Learn); mappings are saved with presets. MIDI clock
    /// sets the tempo.
    #[arg(long, value_name = "PORT", help_heading = "Control")]
    pub midi: Option<String>,

    /// Print the MIDI input ports, and exit.
    #[arg(long, help_heading = "Control")]
    pub list_midi: bool,

    /// What the sound analysis listens to instead of the show's sound (effects'
    /// `lucid.audio_*`, audio mappings, `--bpm audio`): a sound file (from its start at the
    /// first frame, on the show's clock) or a capture device (`default`, its number in
    /// --list-audio, or part of its name). The outputs still carry the show's sound.
    #[arg(long, value_name = "DEVICE|FILE", help_heading = "Sound")]
    pub audio_in: Option<String>,

    /// Play the show's sound on this machine, in step with the picture: on `DEVICE`
    /// (`default` when left out, a number in --list-audio, or part of its name).
    #[arg(long, value_name = "DEVICE", num_args = 0..=1, default_missing_value = "default", help_heading = "Sound")]
    pub audio_out: Option<String>,

    /// Print the sound devices (capture and playback), and exit.
    #[arg(long, help_heading = "Sound")]
    pub list_audio: bool,

    /// Attach to this Daydream stream (`str_...`): play its output and steer it. The API
    /// key comes from DAYDREAM_API_KEY or `$XDG_CONFIG_HOME/lucid/daydream-api-key`.
    #[arg(long, value_name = "ID", conflicts_with_all = ["url", "daydream_create"], help_heading = "Daydream")]
    pub daydream_stream: Option<String>,

    /// Create a Daydream stream (pipeline streamdiffusion, --model and the parameters
    /// given here), print its id and WHIP URL first on stderr, then play and steer it.
    #[arg(long, conflicts_with = "url", help_heading = "Daydream")]
    pub daydream_create: bool,

    /// Daydream's API (tests, proxies).
    #[arg(long, value_name = "URL", default_value = crate::daydream::api::DEFAULT_API, help_heading = "Daydream")]
    pub daydream_api: String,

    /// The Daydream model (a created stream's; for an attached one, a change that reloads
    /// its pipeline). Default for a new stream: stabilityai/sd-turbo.
    #[arg(long, value_name = "MODEL_ID", help_heading = "Daydream")]
    pub model: Option<String>,

    /// Daydream prompt, sent once the stream is attached.
    #[arg(long, value_name = "TEXT", help_heading = "Daydream")]
    pub prompt: Option<String>,

    /// Daydream negative prompt.
    #[arg(long, value_name = "TEXT", help_heading = "Daydream")]
    pub negative_prompt: Option<String>,

    /// Daydream seed.
    #[arg(long, value_name = "N", help_heading = "Daydream")]
    pub seed: Option<u64>,

    /// Daydream inference steps (1-100).
    #[arg(long, value_name = "N", help_heading = "Daydream")]
    pub steps: Option<u32>,

    /// Daydream guidance scale.
    #[arg(long, value_name = "X", help_heading = "Daydream")]
    pub guidance: Option<f64>,

    /// Daydream cues (RON): named parameter sets, gone to with `]`/`[` or the overlay;
    /// a cue's prompt morphs over its `transition` seconds.
    #[arg(long, value_name = "FILE", help_heading = "Daydream")]
    pub cues: Option<PathBuf>,

    /// Start with the overlay hidden (F1 shows it).
    #[arg(long, help_heading = "Show")]
    pub hide_ui: bool,

    /// Start fullscreen (borderless) on the monitor chosen by --monitor.
    #[arg(long, help_heading = "Show")]
    pub fullscreen: bool,

    /// Keep the show's live state in FILE (blackout/fade, freeze, crossfader, cue, the
    /// master chain, layer opacities), written atomically within a second of a change,
    /// and restore it at start: a restart after a crash or a power cut comes back as it was.
    #[arg(long, value_name = "FILE", help_heading = "Show")]
    pub state: Option<PathBuf>,

    /// Installation mode: fullscreen on --monitor, cursor and overlay hidden, and no key or
    /// window-close request ends the show or changes it (SIGTERM/SIGINT stop it cleanly).
    #[arg(long, help_heading = "Show")]
    pub kiosk: bool,

    /// The hours the show is open, local time: "mon-fri 09:00-18:00, sat 10:00-16:00" (a
    /// bare HH:MM-HH:MM is every day; an end before the start runs past midnight). Out of
    /// hours the picture fades to black (--fade) and the sources close; in hours they open
    /// again and the picture fades in.
    #[arg(long, value_name = "HOURS", help_heading = "Show")]
    pub schedule: Option<String>,

    /// Monitor for fullscreen, by index from 0 (as listed in the log at start).
    #[arg(long, value_name = "N", help_heading = "Show")]
    pub monitor: Option<usize>,

    /// Duration of a fade to or from black (the F key).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 2.0,
        help_heading = "Show"
    )]
    pub fade: f64,

    /// Folder screenshots (the S key) are saved in. Default: the current folder.
    #[arg(long, value_name = "DIR", help_heading = "Show")]
    pub screenshot_dir: Option<PathBuf>,

    /// Append one JSON object per second (state, fps, latency, drops, decoder) to FILE.
    #[arg(long, value_name = "FILE", help_heading = "Diagnostics")]
    pub stats_json: Option<PathBuf>,
}

/// `--protocol` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// WebRTC first, HLS as the fallback.
    Auto,
    /// WebRTC (WHEP) only.
    Webrtc,
    /// HLS only.
    Hls,
}

impl From<ProtocolArg> for crate::source::Protocol {
    fn from(p: ProtocolArg) -> Self {
        match p {
            ProtocolArg::Auto => Self::Auto,
            ProtocolArg::Webrtc => Self::WebRtc,
            ProtocolArg::Hls => Self::Hls,
        }
    }
}

/// `--crossfade-curve` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CurveArg {
    /// A's weight 1 - x, B's x.
    Linear,
    /// cos and sin of x times a quarter turn: no dip in the middle.
    EqualPower,
}

/// `--encoder` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EncoderArg {
    /// NVENC if it opens, else libx264.
    Auto,
    /// libx264 (CPU).
    X264,
    /// NVIDIA NVENC; an error where there is none.
    Nvenc,
    /// VAAPI (Intel, AMD); an error where there is none.
    Vaapi,
}

/// `--pipe` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PipeArg {
    /// YUV4MPEG2 (4:2:0), readable by `ffmpeg -i -`, mpv and simple Python readers.
    Y4m,
    /// Raw RGBA, 8 bits a channel, frames back to back with no header (the frame size is
    /// the output size: `--width`/`--height` or the stream's; the log line "output WxH" says it).
    Rgba,
}

impl From<PipeArg> for PipeFormat {
    fn from(p: PipeArg) -> Self {
        match p {
            PipeArg::Y4m => Self::Y4m,
            PipeArg::Rgba => Self::Rgba,
        }
    }
}

impl From<CurveArg> for FaderCurve {
    fn from(c: CurveArg) -> Self {
        match c {
            CurveArg::Linear => Self::Linear,
            CurveArg::EqualPower => Self::EqualPower,
        }
    }
}

impl From<EncoderArg> for EncoderChoice {
    fn from(e: EncoderArg) -> Self {
        match e {
            EncoderArg::Auto => Self::Auto,
            EncoderArg::X264 => Self::X264,
            EncoderArg::Nvenc => Self::Nvenc,
            EncoderArg::Vaapi => Self::Vaapi,
        }
    }
}

/// Parses a flag's value with its type's `FromStr`. The error is one line, `--flag VALUE:
/// why`, with the value masked: values can carry a secret (a stream key in an RTMP URL, a
/// token in a layer's URL), which clap's own error would print whole.
#[derive(Clone)]
pub struct FlagValue<T>(PhantomData<fn() -> T>);

impl<T> Default for FlagValue<T> {
    fn default() -> Self {
        FlagValue(PhantomData)
    }
}

impl<T> TypedValueParser for FlagValue<T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let flag = arg
            .and_then(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .unwrap_or_default();
        let fail = |kind, message: String| clap::Error::raw(kind, message).with_cmd(cmd);
        let text = value
            .to_str()
            .ok_or_else(|| fail(ErrorKind::InvalidUtf8, format!("{flag}: not UTF-8\n")))?;
        text.parse().map_err(|why| {
            fail(
                ErrorKind::ValueValidation,
                format!("{flag} {}: {why}\n", Redacted::text(text)),
            )
        })
    }
}
