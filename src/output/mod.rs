//! Outputs of the rendered canvas: `--record`, `--pipe` and `--output` image sequences.
//!
//! The render side reads back the canvas once per presented video frame (GPU readback on
//! the render path) and hands the pixels to each output: planar YUV converted on the GPU
//! ([`convert`]) for the encoders, RGBA for a raw pipe. Every output has its own thread
//! and its own bounded queue, and counts its own drops: a full queue drops the frame for
//! that output only, so a stalled `--pipe` reader never costs `--record` a frame, and a
//! slow disk never stalls the display. Each output converts and writes in presentation
//! order.

//!
//! - [`targets`]: what the outputs are ([`OutputConfig`], [`OutputTarget`]).
//! - [`plugin`]: the Bevy side (start once the size is known, read back, feed).
//! - [`writer`]: the output threads and their queues; [`order`] keeps frames in order.
//! - [`sink`]: where one thread writes; [`record`], [`stream`], [`images`], [`v4l2`],
//!   [`y4m`], [`ndi`] are the outputs themselves, [`encode`] and [`convert`] their H.264
//!   and YUV, [`audio`] the AAC track of those that carry sound.
//! - [`state`]: each output's counters and phase, for status and the overlay.

pub mod audio;
pub mod convert;
pub mod encode;
pub mod images;
#[cfg(feature = "ndi")]
#[allow(
    unsafe_code,
    reason = "FFI to the NDI runtime: besides decode::hwaccel and output::interrupt, the one module allowed unsafe code"
)]
pub mod ndi;
pub mod record;
pub mod stream;
pub mod v4l2;
pub mod y4m;

mod frame;
mod interrupt;
mod order;
mod plugin;
mod sink;
mod state;
mod targets;
mod writer;

pub use crate::error::output::{Cause, OutputError};
pub use frame::{Pixels, RenderedFrame};
pub use plugin::{OutputPlugin, WriterSlot};
pub use sink::readback_rows;
pub use state::{OutputPhase, OutputState, OutputStats};
pub use targets::{OutputConfig, OutputTarget, PipeFormat};
pub use writer::{FrameSink, OutputWriter};
