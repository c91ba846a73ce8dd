//! What the outputs are: [`OutputConfig`] (the validated `--record`, `--pipe`, `--output`
//! and encoder settings) and one [`OutputTarget`] per `--output`, parsed with `FromStr`.

use std::path::PathBuf;
use std::str::FromStr;

use super::encode::EncoderSettings;
use super::images::ImagePattern;
use super::stream::StreamTarget;
use super::v4l2;

/// Formats `--pipe` can write to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeFormat {
    /// YUV4MPEG2 (4:2:0), readable by `ffmpeg -i -`, mpv and simple Python readers.
    Y4m,
    /// Raw RGBA, 8 bits a channel, frames back to back with no header (the frame size is
    /// the output size: `--width`/`--height` or the stream's; the log line "output WxH" says it).
    Rgba,
}

/// What to write and at which size.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// `--record` path.
    pub record: Option<PathBuf>,
    /// `--overwrite`: replace an existing record file.
    pub overwrite: bool,
    /// `--pipe` format.
    pub pipe: Option<PipeFormat>,
    /// Canvas size.
    pub width: u32,
    /// Canvas size.
    pub height: u32,
    /// Nominal frame rate for container headers.
    pub frame_rate: f64,
    /// `--output` targets.
    pub targets: Vec<OutputTarget>,
    /// How the H.264 outputs encode (`--encoder`, `--bitrate`, `--gop`).
    pub encoding: EncoderSettings,
    /// A window shows the show: when every output has failed, it plays on there.
    pub on_screen: bool,
}

impl OutputConfig {
    /// True when any output is configured.
    pub fn any(&self) -> bool {
        self.record.is_some() || self.pipe.is_some() || !self.targets.is_empty()
    }

    /// True when every `--output` is a file (a network output plays in real time).
    pub fn files_only(&self) -> bool {
        self.targets
            .iter()
            .all(|t| matches!(t, OutputTarget::Images(_)))
    }
}

/// One `--output`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// `frames/%06d.png`.
    Images(ImagePattern),
    /// `rtmp://`, `rtmps://`, `srt://`, `udp://`.
    Stream(StreamTarget),
    /// `/dev/videoN`: a v4l2loopback virtual camera.
    V4l2(PathBuf),
    /// `ndi://NAME`: an NDI source (cargo feature `ndi`).
    Ndi(String),
}

impl OutputTarget {
    /// The output's kind, naming it in the status line and stats.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            OutputTarget::Images(_) => "images",
            OutputTarget::Stream(s) => s.protocol.name(),
            OutputTarget::V4l2(_) => "v4l2",
            OutputTarget::Ndi(_) => "ndi",
        }
    }
}

impl FromStr for OutputTarget {
    type Err = String;

    /// Parses one `--output` value; the error says which forms there are.
    fn from_str(text: &str) -> Result<OutputTarget, String> {
        let text = text.trim();
        if let Some(stream) = StreamTarget::parse(text) {
            return stream.map(OutputTarget::Stream);
        }
        if v4l2::is_device(text) {
            return Ok(OutputTarget::V4l2(PathBuf::from(text)));
        }
        if let Some(name) = text.strip_prefix("ndi://") {
            if name.is_empty() {
                return Err("ndi:// needs a source name (ndi://Lucid)".into());
            }
            if !cfg!(feature = "ndi") {
                return Err(
                    "this build has no NDI: build with `cargo build --features ndi`".into(),
                );
            }
            return Ok(OutputTarget::Ndi(name.to_string()));
        }
        if text.contains("://") {
            return Err(
                "network outputs are rtmp://, rtmps://, srt://host:port and udp://host:port".into(),
            );
        }
        ImagePattern::parse(text).map(OutputTarget::Images)
    }
}
