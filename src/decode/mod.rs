//! The decode thread: demux and decode with FFmpeg (hardware first, software fallback),
//! convert to packed 4:2:0 and hand frames to the render side through a bounded queue.

//!
//! - [`thread`]: the [`DecodeThread`] (opening, the decode loops, the end message).
//! - [`audio`]: the source's sound, resampled and stamped in stream time for the outputs.
//! - [`input`]: what FFmpeg demuxes (HLS segment bytes, a URL or file, the test pattern).
//! - [`decoder`]: one stream's decoder, scaler and timing.
//! - [`frame`]: the decoded frame and the bounded queue to the render side.
//! - [`hwaccel`]: FFmpeg's hardware devices (the FFI, behind a safe API).
//!
//! Its error type, [`DecodeError`], lives with the others in [`crate::error`].

pub mod audio;
mod decoder;
pub mod frame;
pub mod hwaccel;
mod input;
mod thread;

use std::time::Duration;

pub use crate::error::decode::DecodeError;
pub use audio::{AudioChunk, AudioFeed, AudioInfo};
pub use frame::{
    ColorMatrix, FrameReceiver, FrameSender, MAX_TEXTURE_SIDE, Picture, QueuePolicy, VideoFrame,
    frame_queue,
};
pub use thread::{DecodeJoin, DecodeThread};

use crate::error::LucidError;
use crate::source::SourceOptions;
use crate::source::hls::LiveEdge;
use crate::source::whep::WhepStats;

/// Frames buffered between decoder and renderer (about a quarter second at 30 fps).
pub const FRAME_QUEUE: usize = 8;

/// What the decode thread learned when it opened the stream.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The input as the user named it.
    pub source: String,
    /// Decoded width.
    pub width: u32,
    /// Decoded height.
    pub height: u32,
    /// Nominal frame rate, when the stream declares one.
    pub frame_rate: Option<f64>,
    /// How long the input is, when it is finite and says so (files).
    pub duration: Option<Duration>,
    /// Which decoder runs, e.g. `h264 (software)` or `h264 (hardware: cuda)`.
    pub decoder: String,
    /// True when frames come from a live source (drop rather than block when behind).
    pub live: bool,
    /// The HLS rendition, when the source is HLS.
    pub rendition: Option<String>,
    /// Where the live edge is, for live HLS.
    pub live_edge: Option<LiveEdge>,
    /// The HLS target duration (longest segment), for the default latency target.
    pub segment_duration: Option<Duration>,
    /// The network protocol playing ("webrtc", "hls"), for network sources.
    pub protocol: Option<&'static str>,
    /// Why that protocol, when it was not the first choice ("HLS: WebRTC answered 406").
    pub protocol_why: Option<String>,
    /// WebRTC figures (RTT, jitter, loss, keyframe requests, jitter buffer), over WebRTC.
    pub webrtc: Option<WhepStats>,
    /// True when the source releases frames at their presentation time itself (WebRTC's
    /// jitter buffer): the renderer shows them on arrival.
    pub paced_upstream: bool,
    /// The source's sound, when it has some and an output carries it.
    pub audio: Option<AudioFeed>,
}

/// How the stream ended, sent once after the last frame.
#[derive(Debug)]
pub enum SourceEnd {
    /// The input ended normally (ENDLIST, end of file).
    Finished,
    /// The input failed and cannot continue.
    Failed(LucidError),
}

/// Options for the decode thread.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Never try hardware decode.
    pub force_cpu: bool,
    /// How network sources are opened (protocol, playback info, how long to wait).
    pub source: SourceOptions,
    /// Decode the source's sound too (an output carries it).
    pub audio: bool,
}

/// The lavfi graph behind the built-in test pattern: moving, colourful, and 4:2:0 so it
/// takes the same upload path as real video.
pub const TEST_PATTERN: &str = "testsrc2=size=1280x720:rate=30,format=yuv420p";

/// The size a decoded picture is uploaded at: its own, or scaled to fit [`MAX_TEXTURE_SIDE`]
/// keeping its aspect ratio (even sides, as 4:2:0 needs). `None` for an empty picture.
pub fn fit_video_size(width: u32, height: u32) -> Option<(u32, u32)> {
    if width == 0 || height == 0 {
        return None;
    }
    let longest = width.max(height);
    if longest <= MAX_TEXTURE_SIDE {
        return Some((width, height));
    }
    let scale = f64::from(MAX_TEXTURE_SIDE) / f64::from(longest);
    let side = |v: u32| frame::even_side(f64::from(v) * scale);
    Some((side(width), side(height)))
}

#[cfg(test)]
mod tests {
    use super::decoder::is_yuv;
    use super::*;
    use ffmpeg_next::format::Pixel;

    #[test]
    fn yuv_formats_are_told_from_rgb_ones() {
        for p in [
            Pixel::YUV420P,
            Pixel::YUVJ420P,
            Pixel::NV12,
            Pixel::YUYV422,
            Pixel::YUV444P,
        ] {
            assert!(is_yuv(p), "{p:?}");
        }
        for p in [
            Pixel::RGB24,
            Pixel::RGBA,
            Pixel::BGRA,
            Pixel::PAL8,
            Pixel::GRAY8,
            Pixel::GBRP,
        ] {
            assert!(!is_yuv(p), "{p:?}");
        }
    }

    #[test]
    fn oversized_and_empty_pictures() {
        assert_eq!(fit_video_size(0, 720), None);
        assert_eq!(fit_video_size(1280, 0), None);
        assert_eq!(fit_video_size(1280, 720), Some((1280, 720)));
        assert_eq!(fit_video_size(16448, 16), Some((8192, 8)));
        assert_eq!(fit_video_size(16, 100_000), Some((2, 8192)));
        assert_eq!(fit_video_size(u32::MAX, u32::MAX), Some((8192, 8192)));
    }
}
