//! [`DecodeError`]: why an input cannot be decoded (the decode stage's own error type).

use ffmpeg_next as ff;

use crate::redact::Redacted;

/// Why the input cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// FFmpeg could not open an input (a file, a URL, the segment byte stream).
    #[error("cannot open {source_name}: {source}")]
    Open {
        /// The input as the user named it (credentials masked).
        source_name: Redacted,
        /// FFmpeg's error.
        source: ff::Error,
    },
    /// The input opened but cannot be played (no video, no decoder, a zero size, or the
    /// decoder keeps failing).
    #[error("cannot play {source_name}: {reason}")]
    Unplayable {
        /// The input as the user named it (credentials masked).
        source_name: Redacted,
        /// What is missing or unsupported.
        reason: String,
    },
    /// FFmpeg itself could not start.
    #[error("FFmpeg failed to initialise")]
    Init(#[source] ff::Error),
    /// Lucid was asked to stop while the input was being opened. Not a failure.
    #[error("stopped")]
    Stopped,
}
