//! The command line. It keeps every flag of the seed's `playback.py` with its meaning and
//! adds Lucid's outputs; everything here is plain data for [`crate::app`] to act on.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::decode::frame::{MAX_TEXTURE_SIDE, even_side};
use crate::error::{LucidError, Result};

/// Lucid plays live AI-generated video (Daydream / Livepeer HLS, or any FFmpeg input)
/// through a GPU render path, in a window or headless, and records or pipes what it renders.
#[derive(Debug, Clone, Parser)]
#[command(name = "lucid", version, about, long_about = None)]
pub struct Args {
    /// What to play: an HLS master or media playlist (http/https), a bare Livepeer playback
    /// id, an `https://lvpr.tv/?v=<id>` page, or anything FFmpeg opens (file, rtmp://, srt://).
    /// Without it Lucid plays a built-in moving test pattern.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// Open no window: render offscreen on a headless schedule (for --record / --pipe).
    #[arg(long)]
    pub no_preview: bool,

    /// Decode in software only, even when hardware decode is available.
    #[arg(long)]
    pub force_cpu: bool,

    /// Output width in pixels. Given alone, the height follows the stream's aspect ratio.
    #[arg(long, value_name = "PIXELS")]
    pub width: Option<u32>,

    /// Output height in pixels. Given alone, the width follows the stream's aspect ratio.
    #[arg(long, value_name = "PIXELS")]
    pub height: Option<u32>,

    /// Record the rendered output (never the UI) as H.264; `.mp4` or `.mkv` picks the container.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Replace the --record file if it exists (without it, an existing file is never touched).
    #[arg(long)]
    pub overwrite: bool,

    /// Write the rendered frames to stdout as they are presented.
    #[arg(long, value_name = "FORMAT")]
    pub pipe: Option<PipeFormat>,

    /// Also send the rendered frames to: `rtmp://host/app/key` (or rtmps://),
    /// `srt://host:port`, `udp://host:port` (H.264; a dropped connection is reopened with
    /// backoff), `/dev/videoN` (a v4l2loopback virtual camera), or `frames/%06d.png` or
    /// `.jpg` (every frame as a numbered image, from 1; the folder must exist, --overwrite
    /// replaces images). Repeatable.
    #[arg(long, value_name = "URL|PATTERN")]
    pub output: Vec<String>,

    /// Add a layer above the others (`--url` is the bottom one): any --url form, with
    /// options `SOURCE:opacity=0.5,blend=screen,fit=cover,loop=true,end=fade`. Blend modes:
    /// normal, multiply, screen, overlay, darken, lighten, color-dodge, color-burn,
    /// hard-light, soft-light, difference, exclusion, add. Repeatable, bottom to top.
    #[arg(long, value_name = "SOURCE[:OPTIONS]")]
    pub layer: Vec<String>,

    /// Add an effect to layer N's own chain (layers from 1: the scene's, then --layer's),
    /// run on its picture before it is placed and blended, e.g.
    /// `--layer-effect 1:tint:color=#ff0000,amount=1`. Same forms as --effect; repeatable.
    #[arg(long, value_name = "N:NAME[:PARAMS]")]
    pub layer_effect: Vec<String>,

    /// Load a whole show saved as RON (the overlay's Save scene): the bottom source, the
    /// layers, the crossfader, the master chain and MIDI mappings. --url replaces its
    /// source; --layer, --preset and --effect add to it.
    #[arg(long, value_name = "FILE")]
    pub scene: Option<PathBuf>,

    /// The output's own frame rate: the canvas is drawn and every output gets a frame this
    /// many times a second, whatever the sources' rates (each shows its newest frame).
    /// Without it the --url video's frames set the pace (offline: a faster layer's rate; in
    /// a window with layers: the display's refresh rate). Offline renders (a file into files) tick on the video's time, as fast as
    /// the machine allows; otherwise the clock is real time.
    #[arg(long, value_name = "FPS")]
    pub fps: Option<f64>,

    /// A timed A/B crossfade: the show starts on bus A and crossfades to bus B over this
    /// many seconds of video; X (or OSC) then crossfades back and forth in the same time
    /// (default 2 s). Layers say their bus with `bus=a|b` (default both).
    #[arg(long, value_name = "SECONDS")]
    pub crossfade: Option<f64>,

    /// The crossfader's curve: `linear` or `equal-power`.
    #[arg(long, value_name = "CURVE", default_value = "linear")]
    pub crossfade_curve: CurveArg,

    /// H.264 encoder for --record and network outputs: `auto` uses NVENC where an NVIDIA
    /// driver takes it, VAAPI where a VAAPI device opens, and libx264 otherwise (the log
    /// says which and why).
    #[arg(long, value_name = "ENCODER", default_value = "auto")]
    pub encoder: EncoderArg,

    /// Bitrate of the H.264 outputs, e.g. `6M` or `4500k`. Default: constant quality for
    /// --record, 6M for network outputs.
    #[arg(long, value_name = "BITS")]
    pub bitrate: Option<String>,

    /// Keyframe interval of the H.264 outputs, in frames. Default: two seconds' worth.
    #[arg(long, value_name = "FRAMES")]
    pub gop: Option<u32>,

    /// Pace a finite input in real time, skipping frames the machine cannot render in time.
    /// Without it, a file rendered into --record only (no window, no --pipe) renders every
    /// frame, as fast as the machine allows.
    #[arg(long)]
    pub realtime: bool,

    /// Stop after this many seconds of playback (counted from the first frame shown; in
    /// stream time when rendering offline).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,

    /// How long to wait for a stream that is not live yet (404, empty playlist, "stream
    /// open failed"), retrying with backoff; also how long an outage may last.
    #[arg(long, value_name = "SECONDS", default_value_t = 180.0)]
    pub wait: f64,

    /// Append one JSON object per second (state, fps, latency, drops, decoder) to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,

    /// Target latency behind the live edge of a live HLS stream. Default: one segment
    /// duration plus 0.5 s.
    #[arg(long, value_name = "SECONDS")]
    pub latency: Option<f64>,

    /// Add an effect to the chain, e.g. `--effect color:saturation=1.5,hue=30` or
    /// `--effect tint:color=#ff8800,mix=0.5`. Repeat for more, applied in order, after
    /// those of --preset. `--list-effects` shows the effects and their parameters.
    #[arg(long, value_name = "NAME[:PARAM=VALUE,...]")]
    pub effect: Vec<String>,

    /// Load an effect chain saved from the overlay (RON).
    #[arg(long, value_name = "FILE")]
    pub preset: Option<PathBuf>,

    /// Folder of user effects (`*.wgsl`), loaded at start and reloaded when saved.
    /// Default: `$XDG_CONFIG_HOME/lucid/effects` (`~/.config/lucid/effects`).
    #[arg(long, value_name = "DIR")]
    pub effects_dir: Option<PathBuf>,

    /// Folder the overlay lists and saves presets in. Default: `~/.config/lucid/presets`.
    #[arg(long, value_name = "DIR")]
    pub presets_dir: Option<PathBuf>,

    /// Listen for OSC on this UDP port (all interfaces). `--list-osc` shows the addresses.
    #[arg(long, value_name = "PORT")]
    pub osc: Option<u16>,

    /// Send changed values (effect parameters, level, freeze) as OSC to HOST:PORT, for
    /// controller apps such as TouchOSC.
    #[arg(long, value_name = "HOST:PORT")]
    pub osc_feedback: Option<String>,

    /// Print Lucid's OSC addresses, and exit.
    #[arg(long)]
    pub list_osc: bool,

    /// Take MIDI from this input port: its number in --list-midi, or part of its name.
    /// Map controls in the overlay (Learn); mappings are saved with presets. MIDI clock
    /// sets the tempo.
    #[arg(long, value_name = "PORT")]
    pub midi: Option<String>,

    /// Print the MIDI input ports, and exit.
    #[arg(long)]
    pub list_midi: bool,

    /// Print the available effects with their parameters, and exit.
    #[arg(long)]
    pub list_effects: bool,

    /// Start with the overlay hidden (F1 shows it).
    #[arg(long)]
    pub hide_ui: bool,

    /// Start fullscreen (borderless) on the monitor chosen by --monitor.
    #[arg(long)]
    pub fullscreen: bool,

    /// Monitor for fullscreen, by index from 0 (as listed in the log at start).
    #[arg(long, value_name = "N")]
    pub monitor: Option<usize>,

    /// Duration of a fade to or from black (the F key).
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub fade: f64,

    /// Folder screenshots (the S key) are saved in. Default: the current folder.
    #[arg(long, value_name = "DIR")]
    pub screenshot_dir: Option<PathBuf>,

    /// Which protocol plays a network --url: `auto` plays WebRTC (WHEP) where the source
    /// has it and falls back to HLS; `webrtc` or `hls` force one (a WHEP path or an
    /// `.m3u8` already says which).
    #[arg(long, value_name = "PROTOCOL", default_value = "auto")]
    pub protocol: ProtocolArg,

    /// Livepeer API that answers playback info for a playback id (also a self-hosted
    /// catalyst).
    #[arg(long, value_name = "URL", default_value = crate::source::livepeer::DEFAULT_API)]
    pub livepeer_api: String,

    /// A STUN server for WebRTC, `stun:host[:port]` (repeatable): adds this machine's
    /// public address to the offer. Lucid also asks the host a WHEP endpoint redirects to,
    /// as Livepeer's players do.
    #[arg(long, value_name = "URL")]
    pub ice_server: Vec<String>,

    /// Attach to this Daydream stream (`str_...`): play its output and steer it. The API
    /// key comes from DAYDREAM_API_KEY or `$XDG_CONFIG_HOME/lucid/daydream-api-key`.
    #[arg(long, value_name = "ID", conflicts_with_all = ["url", "daydream_create"])]
    pub daydream_stream: Option<String>,

    /// Create a Daydream stream (pipeline streamdiffusion, --model and the parameters
    /// given here), print its id and WHIP URL first on stderr, then play and steer it.
    #[arg(long, conflicts_with = "url")]
    pub daydream_create: bool,

    /// The show's tempo in beats per minute (20-300): effects get `lucid.bpm` and
    /// `lucid.beat`. The T key taps a tempo in the window.
    #[arg(long, value_name = "BPM", default_value_t = 120.0)]
    pub bpm: f64,

    /// Daydream's API (tests, proxies).
    #[arg(long, value_name = "URL", default_value = crate::daydream::api::DEFAULT_API)]
    pub daydream_api: String,

    /// The Daydream model (a created stream's; for an attached one, a change that reloads
    /// its pipeline). Default for a new stream: stabilityai/sd-turbo.
    #[arg(long, value_name = "MODEL_ID")]
    pub model: Option<String>,

    /// Daydream prompt, sent once the stream is attached.
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,

    /// Daydream negative prompt.
    #[arg(long, value_name = "TEXT")]
    pub negative_prompt: Option<String>,

    /// Daydream seed.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Daydream inference steps (1-100).
    #[arg(long, value_name = "N")]
    pub steps: Option<u32>,

    /// Daydream guidance scale.
    #[arg(long, value_name = "X")]
    pub guidance: Option<f64>,

    /// Daydream cues (RON): named parameter sets, gone to with `]`/`[` or the overlay;
    /// a cue's prompt morphs over its `transition` seconds.
    #[arg(long, value_name = "FILE")]
    pub cues: Option<PathBuf>,
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

/// Formats `--pipe` can write to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PipeFormat {
    /// YUV4MPEG2 (4:2:0), readable by `ffmpeg -i -`, mpv and simple Python readers.
    Y4m,
    /// Raw RGBA, 8 bits a channel, frames back to back with no header (the frame size is
    /// the output size: `--width`/`--height` or the stream's; the log line "output WxH" says it).
    Rgba,
}

impl Args {
    /// Checks what clap cannot: sizes and durations that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("--width", self.width), ("--height", self.height)] {
            if let Some(v) = v
                && !(16..=MAX_TEXTURE_SIDE).contains(&v)
            {
                return Err(LucidError::Usage(format!(
                    "{name} must be between 16 and {MAX_TEXTURE_SIDE} pixels, got {v}"
                )));
            }
        }
        for (name, v) in [
            ("--fade", Some(self.fade)),
            ("--duration", self.duration),
            ("--latency", self.latency),
            ("--wait", Some(self.wait)),
        ] {
            if let Some(d) = v
                && !(d.is_finite() && d > 0.0 && d < 3600.0)
            {
                return Err(LucidError::Usage(format!(
                    "{name} must be a positive number of seconds, got {d}"
                )));
            }
        }
        self.livepeer_api()?;
        self.ice_servers()?;
        self.daydream()?;
        if !crate::effects::tempo::BPM_RANGE.contains(&self.bpm) {
            return Err(LucidError::Usage(format!(
                "--bpm must be 20 to 300, got {}",
                self.bpm
            )));
        }
        if let Some(path) = &self.record {
            crate::output::record::container_for(path)?;
            crate::output::record::check_path(path, self.overwrite)?;
        }
        for target in self.output_targets()? {
            match target {
                crate::output::OutputTarget::Images(pattern) => pattern.check(self.overwrite)?,
                crate::output::OutputTarget::V4l2(path) => {
                    crate::output::v4l2::check_device(&path)?;
                }
                #[cfg(feature = "ndi")]
                crate::output::OutputTarget::Ndi(name) => crate::output::ndi::check_runtime(&name)?,
                #[cfg(not(feature = "ndi"))]
                crate::output::OutputTarget::Ndi(_) => {}
                crate::output::OutputTarget::Stream(_) => {}
            }
        }
        self.encoding()?;
        self.osc_feedback()?;
        self.layers()?;
        self.crossfader()?;
        if let Some(fps) = self.fps
            && !(fps.is_finite() && (1.0..=240.0).contains(&fps))
        {
            return Err(LucidError::Usage(format!(
                "--fps must be 1 to 240, got {fps}"
            )));
        }
        Ok(())
    }
}

impl Args {
    /// `--output` values, parsed.
    pub fn output_targets(&self) -> Result<Vec<crate::output::OutputTarget>> {
        self.output
            .iter()
            .map(|o| {
                crate::output::OutputTarget::parse(o).map_err(|why| {
                    LucidError::Usage(format!(
                        "--output {}: {why}",
                        crate::redact::Redacted::text(o)
                    ))
                })
            })
            .collect()
    }

    /// The crossfader as the show starts (`--crossfade`, `--crossfade-curve`).
    pub fn crossfader(&self) -> Result<crate::compositor::Crossfader> {
        use crate::compositor::{Crossfader, FaderCurve};
        if let Some(s) = self.crossfade
            && !(s.is_finite() && (0.0..=3600.0).contains(&s))
        {
            return Err(LucidError::Usage(format!(
                "--crossfade must be 0 to 3600 seconds, got {s}"
            )));
        }
        Ok(Crossfader {
            position: 0.0,
            target: if self.crossfade.is_some() { 1.0 } else { 0.0 },
            seconds: self.crossfade.unwrap_or(2.0) as f32,
            curve: match self.crossfade_curve {
                CurveArg::Linear => FaderCurve::Linear,
                CurveArg::EqualPower => FaderCurve::EqualPower,
            },
        })
    }

    /// `--layer` values, parsed.
    pub fn layers(&self) -> Result<Vec<crate::compositor::LayerSpec>> {
        self.layer
            .iter()
            .map(|l| {
                crate::compositor::LayerSpec::parse(l).map_err(|why| {
                    LucidError::Usage(format!(
                        "--layer {}: {why}",
                        crate::redact::Redacted::text(l)
                    ))
                })
            })
            .collect()
    }

    /// `--osc-feedback`, resolved to an address.
    pub fn osc_feedback(&self) -> Result<Option<std::net::SocketAddr>> {
        use std::net::ToSocketAddrs;
        let Some(text) = &self.osc_feedback else {
            return Ok(None);
        };
        if self.osc.is_none() {
            return Err(LucidError::Usage(
                "--osc-feedback answers a controller: add --osc PORT".into(),
            ));
        }
        text.to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .map(Some)
            .ok_or_else(|| {
                LucidError::Usage(format!(
                    "--osc-feedback {text}: use HOST:PORT, e.g. 192.168.1.20:9000"
                ))
            })
    }

    /// `--encoder`, `--bitrate` and `--gop`, checked.
    pub fn encoding(&self) -> Result<crate::output::encode::EncoderSettings> {
        use crate::output::encode::{EncoderChoice, EncoderSettings, parse_bitrate};
        let bitrate = self
            .bitrate
            .as_deref()
            .map(parse_bitrate)
            .transpose()
            .map_err(LucidError::Usage)?;
        if let Some(gop) = self.gop
            && !(1..=1000).contains(&gop)
        {
            return Err(LucidError::Usage(format!(
                "--gop must be 1 to 1000 frames, got {gop}"
            )));
        }
        Ok(EncoderSettings {
            choice: match self.encoder {
                EncoderArg::Auto => EncoderChoice::Auto,
                EncoderArg::X264 => EncoderChoice::X264,
                EncoderArg::Nvenc => EncoderChoice::Nvenc,
                EncoderArg::Vaapi => EncoderChoice::Vaapi,
            },
            bitrate,
            gop: self.gop,
        })
    }

    /// The Daydream options, when `--daydream-stream` or `--daydream-create` asks for them.
    pub fn daydream(&self) -> Result<Option<crate::daydream::DaydreamOptions>> {
        use crate::daydream::api::param;
        use crate::daydream::{DaydreamOptions, StreamChoice};
        let stream = match (&self.daydream_stream, self.daydream_create) {
            (Some(id), _) if id.trim().is_empty() => {
                return Err(LucidError::Usage(
                    "--daydream-stream needs a stream id".into(),
                ));
            }
            (Some(id), _) => StreamChoice::Attach(id.trim().to_string()),
            (None, true) => StreamChoice::Create,
            (None, false) => {
                let steering = [
                    ("--model", self.model.is_some()),
                    ("--prompt", self.prompt.is_some()),
                    ("--negative-prompt", self.negative_prompt.is_some()),
                    ("--seed", self.seed.is_some()),
                    ("--steps", self.steps.is_some()),
                    ("--guidance", self.guidance.is_some()),
                    ("--cues", self.cues.is_some()),
                ];
                if let Some((flag, _)) = steering.iter().find(|(_, given)| *given) {
                    return Err(LucidError::Usage(format!(
                        "{flag} steers a Daydream stream: add --daydream-stream ID or --daydream-create"
                    )));
                }
                return Ok(None);
            }
        };
        if let Some(steps) = self.steps
            && !(1..=100).contains(&steps)
        {
            return Err(LucidError::Usage(format!(
                "--steps must be 1 to 100, got {steps}"
            )));
        }
        if let Some(g) = self.guidance
            && !(g.is_finite() && (0.0..=100.0).contains(&g))
        {
            return Err(LucidError::Usage(format!(
                "--guidance must be 0 to 100, got {g}"
            )));
        }
        let mut params = serde_json::Map::new();
        let mut put = |name: &str, value: Option<serde_json::Value>| {
            if let Some(v) = value {
                params.insert(name.to_string(), v);
            }
        };
        put(param::PROMPT, self.prompt.clone().map(Into::into));
        put(
            param::NEGATIVE_PROMPT,
            self.negative_prompt.clone().map(Into::into),
        );
        put(param::SEED, self.seed.map(Into::into));
        put(param::STEPS, self.steps.map(Into::into));
        put(param::GUIDANCE, self.guidance.map(Into::into));
        Ok(Some(DaydreamOptions {
            stream,
            api: self.daydream_api.trim().to_string(),
            model: self.model.clone(),
            params,
            config_dir: config_root(),
        }))
    }

    /// `--ice-server` values, parsed.
    pub fn ice_servers(&self) -> Result<Vec<crate::source::whep::stun::StunServer>> {
        self.ice_server
            .iter()
            .map(|s| {
                crate::source::whep::stun::StunServer::parse(s)
                    .map_err(|why| LucidError::Usage(format!("--ice-server {why}")))
            })
            .collect()
    }

    /// `--livepeer-api` as a URL (with a trailing slash, so paths join under it).
    pub fn livepeer_api(&self) -> Result<url::Url> {
        let mut raw = self.livepeer_api.trim().to_string();
        if !raw.ends_with('/') {
            raw.push('/');
        }
        url::Url::parse(&raw)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                LucidError::Usage(format!(
                    "--livepeer-api must be an http(s) URL, got {:?}",
                    self.livepeer_api
                ))
            })
    }
}

/// The size Lucid renders and records at: the user's `--width`/`--height`, with a missing
/// side derived from the stream's aspect ratio, or the stream's own size. Sides are rounded
/// to even numbers because 4:2:0 encoders and YUV4MPEG2 need them, and kept within
/// 2..=[`MAX_TEXTURE_SIDE`] (a derived side of a very wide or tall stream included).
pub fn output_size(width: Option<u32>, height: Option<u32>, stream: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (stream.0.max(1) as f64, stream.1.max(1) as f64);
    let (w, h) = match (width, height) {
        (Some(w), Some(h)) => (w as f64, h as f64),
        (Some(w), None) => (w as f64, w as f64 * sh / sw),
        (None, Some(h)) => (h as f64 * sw / sh, h as f64),
        (None, None) => (sw, sh),
    };
    (even_side(w), even_side(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_side_keeps_aspect_ratio() {
        assert_eq!(output_size(Some(640), None, (1280, 720)), (640, 360));
        assert_eq!(output_size(None, Some(360), (1280, 720)), (640, 360));
        assert_eq!(output_size(None, None, (1280, 720)), (1280, 720));
        assert_eq!(output_size(Some(300), Some(300), (1280, 720)), (300, 300));
        // Odd results are rounded to even for 4:2:0 output.
        assert_eq!(output_size(Some(101), None, (100, 100)), (102, 102));
        // A derived side stays within bounds, however extreme the stream's shape.
        assert_eq!(output_size(None, Some(8192), (16448, 16)), (8192, 8192));
        assert_eq!(output_size(Some(16), None, (1, u32::MAX)), (16, 8192));
        assert_eq!(output_size(None, None, (0, 0)), (2, 2));
    }

    #[test]
    fn rejects_nonsense_sizes_and_durations() {
        let base = Args::parse_from(["lucid"]);
        let mut a = base.clone();
        a.width = Some(0);
        assert!(a.validate().is_err());
        let mut a = base.clone();
        a.duration = Some(-1.0);
        assert!(a.validate().is_err());
        let mut a = base.clone();
        a.record = Some("out.avi".into());
        assert!(a.validate().is_err());
        let mut a = base;
        a.livepeer_api = "ftp://x".into();
        assert!(a.validate().is_err());
        a.livepeer_api = "http://127.0.0.1:9/sub".into();
        assert_eq!(
            a.livepeer_api().unwrap().as_str(),
            "http://127.0.0.1:9/sub/"
        );
    }
}
