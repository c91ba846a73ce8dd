//! Typed errors for every stage, and the process exit code each one maps to.
//!
//! Exit codes are part of Lucid's interface (scripts and supervisors read them), so they
//! are documented in the README and kept stable here.

use std::path::PathBuf;

/// Everything that can stop Lucid, grouped so the exit code tells a supervisor what kind of
/// failure it was without parsing the message.
#[derive(Debug, thiserror::Error)]
pub enum LucidError {
    /// The command line was valid for clap but not for Lucid (e.g. a zero size).
    #[error("{0}")]
    Usage(String),
    /// The host could not be reached at all (DNS, refused connection, timeout).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL that was requested.
        url: String,
        /// What the HTTP client reported.
        reason: String,
    },
    /// The server kept answering with an HTTP error after the bounded retry.
    #[error("{url} answered HTTP {status} after {attempts} attempts")]
    HttpStatus {
        /// The URL that was requested.
        url: String,
        /// The last status code seen.
        status: u16,
        /// How many requests were made.
        attempts: u32,
    },
    /// The body was fetched but is not something Lucid can play.
    #[error("{url} is not an HLS playlist: {reason}")]
    NotAPlaylist {
        /// The URL that was requested.
        url: String,
        /// Why the body was rejected.
        reason: String,
    },
    /// The stream opened but cannot be played (no video stream, unsupported codec, encryption).
    #[error("cannot play {source_name}: {reason}")]
    Unplayable {
        /// The input as the user named it.
        source_name: String,
        /// What is missing or unsupported.
        reason: String,
    },
    /// FFmpeg could not open or read an input that is not HLS.
    #[error("cannot open {source_name}: {reason}")]
    InputOpen {
        /// The input as the user named it.
        source_name: String,
        /// FFmpeg's message.
        reason: String,
    },
    /// An output (record file, pipe) cannot be written.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file or stream that failed.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The render device or window could not be set up.
    #[error("renderer failed: {0}")]
    Render(String),
}

impl LucidError {
    /// The process exit code for this error. 0 is success, 1 is reserved for unexpected
    /// failures and 2 for command-line errors (clap uses it too).
    pub fn exit_code(&self) -> u8 {
        match self {
            LucidError::Usage(_) => 2,
            LucidError::Unreachable { .. } => 3,
            LucidError::HttpStatus { .. } => 4,
            LucidError::NotAPlaylist { .. } | LucidError::Unplayable { .. } => 5,
            LucidError::InputOpen { .. } => 6,
            LucidError::Output { .. } => 7,
            LucidError::Render(_) => 8,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = LucidError> = std::result::Result<T, E>;
