//! Where one output thread writes ([`Sink`]): the recorder, a pipe, an image sequence, a
//! network stream, a virtual camera or NDI.

use std::io::{BufWriter, ErrorKind, Write};

use ffmpeg_next as ff;
use tracing::info;

use super::frame::{Pixels, RenderedFrame};
use super::images::ImageSequence;
#[cfg(feature = "ndi")]
use super::ndi;
use super::record::Recorder;
use super::stream::StreamOutput;
use super::v4l2::V4l2Output;
use super::y4m::Y4mWriter;
use crate::decode::AudioChunk;
use crate::error::OutputError;
use crate::error::Result;

/// Where one output thread writes.
pub(super) enum Sink {
    Record(Recorder),
    Y4m(Y4mWriter<BufWriter<std::io::Stdout>>),
    Rgba(BufWriter<std::io::Stdout>),
    Images(ImageSequence),
    Stream(StreamOutput),
    V4l2(V4l2Output),
    #[cfg(feature = "ndi")]
    Ndi(ndi::NdiOutput),
}

/// What became of one frame handed to a [`Sink`].
pub(super) enum Written {
    /// Written: this many bytes (0 where not counted).
    Bytes(u64),
    /// Not written: a network output that is down (counted as a drop).
    Dropped,
    /// The pipe's reader is gone: a clean stop.
    Closed,
}

impl Sink {
    pub(super) fn pixels(&self) -> Pixels {
        match self {
            Sink::Rgba(_) | Sink::Images(_) => Pixels::Rgba,
            #[cfg(feature = "ndi")]
            Sink::Ndi(_) => Pixels::Rgba,
            Sink::Record(_) | Sink::Y4m(_) | Sink::Stream(_) | Sink::V4l2(_) => Pixels::Yuv,
        }
    }

    /// Writes one frame.
    pub(super) fn write(
        &mut self,
        frame: &RenderedFrame,
        yuv: Option<&mut ff::frame::Video>,
        row_bytes: usize,
    ) -> Result<Written> {
        let written = match (self, yuv) {
            (Sink::Record(rec), Some(yuv)) => return rec.write(yuv, frame.pts).map(Written::Bytes),
            (Sink::Stream(out), Some(yuv)) => {
                return Ok(out
                    .write(yuv, frame.pts)?
                    .map_or(Written::Dropped, Written::Bytes));
            }
            (Sink::V4l2(cam), Some(yuv)) => {
                return cam.write(yuv, frame.pts).map(Written::Bytes);
            }
            (Sink::Y4m(pipe), Some(yuv)) => pipe.write(yuv),
            (Sink::Rgba(out), _) => write_rgba(out, &frame.pixels, row_bytes),
            #[cfg(feature = "ndi")]
            (Sink::Ndi(ndi), _) => return ndi.write(&frame.pixels).map(Written::Bytes),
            (Sink::Images(images), _) => {
                images.write(&frame.pixels)?;
                return Ok(Written::Bytes(0));
            }
            (_, None) => Ok(()),
        };
        match written {
            Ok(()) => Ok(Written::Bytes(0)),
            Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(Written::Closed),
            Err(e) => Err(OutputError::new("stdout", "writing the pipe", e).into()),
        }
    }

    /// True for the outputs that carry sound: the recording and network streams.
    pub(super) fn carries_audio(&self) -> bool {
        matches!(self, Sink::Record(_) | Sink::Stream(_))
    }

    /// Places sound on the output's AAC track; returns the bytes written.
    pub(super) fn write_audio(&mut self, chunk: &AudioChunk) -> Result<u64> {
        match self {
            Sink::Record(rec) => rec.write_audio(chunk),
            Sink::Stream(out) => Ok(out.write_audio(chunk)),
            _ => Ok(0),
        }
    }

    /// Silence its sound track got in gaps, in samples.
    pub(super) fn audio_filled(&self) -> u64 {
        match self {
            Sink::Record(rec) => rec.audio_filled(),
            Sink::Stream(out) => out.audio_filled(),
            _ => 0,
        }
    }

    pub(super) fn finish(self) -> Result<()> {
        match self {
            Sink::Record(rec) => {
                let frames = rec.finish()?;
                info!("recording finalized: {frames} frames");
            }
            Sink::Images(images) => info!("image sequence: {} images written", images.written()),
            Sink::Stream(out) => out.finish()?,
            Sink::V4l2(cam) => cam.finish()?,
            #[cfg(feature = "ndi")]
            Sink::Ndi(_) => {}
            Sink::Y4m(_) | Sink::Rgba(_) => {}
        }
        Ok(())
    }
}

/// Raw RGBA: the padded rows of the readback, without their padding.
fn write_rgba(out: &mut impl Write, padded: &[u8], row_bytes: usize) -> std::io::Result<()> {
    for row in readback_rows(padded, row_bytes) {
        out.write_all(row)?;
    }
    // Readers see each frame as it is presented, not when a buffer fills.
    out.flush()
}

/// The rows of a read-back texture without wgpu's padding (rows are copied into buffers
/// 256-byte aligned): `row_bytes` of each.
pub fn readback_rows(padded: &[u8], row_bytes: usize) -> impl Iterator<Item = &[u8]> {
    padded
        .chunks(row_bytes.div_ceil(256) * 256)
        .map(move |row| &row[..row_bytes.min(row.len())])
}
