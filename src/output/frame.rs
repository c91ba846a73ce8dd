//! What travels from the render side to the output threads: a read-back frame, which
//! pixels it holds, and the messages on each output's queue.

use std::sync::Arc;
use std::time::Duration;

/// Which read-back of the canvas an output takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixels {
    /// Planar 4:2:0 converted on the GPU ([`super::convert::YuvLayout`]): encoders, YUV4MPEG2.
    Yuv,
    /// The canvas as it is: raw RGBA pipes.
    Rgba,
}

impl Pixels {
    /// Bytes a pixel of the read-back.
    pub(super) fn bytes_per_pixel(self) -> f64 {
        match self {
            Pixels::Yuv => 1.5,
            Pixels::Rgba => 4.0,
        }
    }
}

/// One rendered canvas frame as read back from the GPU (rows padded to 256 bytes).
pub struct RenderedFrame {
    /// The presented frame number (see [`FramePresented`]).
    pub number: u64,
    /// Stream time of the video frame shown.
    pub pts: Duration,
    /// The bytes, laid out as the output's [`Pixels`] say.
    pub pixels: Vec<u8>,
}

/// A message on an output's queue.
pub(super) enum WriterMsg {
    /// A frame to write.
    Frame(Arc<RenderedFrame>),
    /// Write what is queued, then finalize.
    Finish,
}
