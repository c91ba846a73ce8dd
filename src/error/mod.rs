//! Lucid's error model: one error type per stage, each keeping its cause, gathered in
//! [`LucidError`], and the one place where errors become process exit codes.
//!
//! The stage errors live here, on the ground floor, and each stage re-exports its own:
//! every floor returns them and [`LucidError`] wraps them all, so the vocabulary of what
//! can go wrong is shared from below instead of gathered from above.
//!
//! - [`HlsError`]: the HLS client (network, playlists, limits). Retry decisions ask it
//!   [`HlsError::is_transient`].
//! - [`WhepError`]: WebRTC signalling, connection and media loss.
//! - [`DecodeError`]: FFmpeg opening and decoding the input.
//! - [`OutputError`]: recordings, pipes, stats files, screenshots.
//! - [`DaydreamError`]: the Daydream API (key, stream, steering).
//! - Usage and renderer errors carry a sentence; a panic becomes [`LucidError::Internal`].
//!
//! Exit codes are part of Lucid's interface (scripts and supervisors read them). They are
//! documented in the README and kept stable here, in [`LucidError::exit_code`].

pub mod daydream;
pub mod decode;
pub mod hls;
pub mod output;
pub mod whep;

pub use daydream::DaydreamError;
pub use decode::DecodeError;
pub use hls::HlsError;
pub use output::OutputError;
pub use whep::WhepError;

/// Exit code of a run that ended normally (end of input, `--duration`, a stop request).
pub const EXIT_OK: u8 = 0;
/// Exit code of a bug: a panic on any thread (outputs are still finalized first).
pub const EXIT_INTERNAL: u8 = 70;
/// Exit code when a second SIGINT/SIGTERM arrives before the first stop has finished.
pub const EXIT_SECOND_SIGNAL: u8 = 130;

/// Everything that can stop Lucid, grouped so the exit code tells a supervisor what kind of
/// failure it was without parsing the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LucidError {
    /// The command line was valid for clap but not for Lucid (e.g. a zero size).
    #[error("{0}")]
    Usage(String),
    /// The HLS client gave up.
    #[error(transparent)]
    Hls(#[from] HlsError),
    /// WebRTC (WHEP) playback could not start or go on.
    #[error(transparent)]
    Whep(#[from] WhepError),
    /// The input could not be opened or decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An output (record file, pipe, stats file) cannot be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// Daydream control: the key, the stream, the API.
    #[error(transparent)]
    Daydream(#[from] DaydreamError),
    /// The render device or window could not be set up.
    #[error("renderer failed: {0}")]
    Render(String),
    /// `--check-effects` found effects that do not compile (the listing says which).
    #[error("{0} effect(s) do not load")]
    EffectsFailed(usize),
    /// A bug: a thread panicked. Outputs were finalized anyway.
    #[error("internal error in thread {thread}: {message}")]
    Internal {
        /// The thread that panicked.
        thread: String,
        /// The panic's message and location.
        message: String,
    },
}

impl LucidError {
    /// The process exit code for this error. 0 is success, 1 is reserved for unexpected
    /// failures and 2 for command-line errors (clap uses it too).
    pub fn exit_code(&self) -> u8 {
        match self {
            LucidError::Usage(_) => 2,
            LucidError::Hls(e) => match e {
                HlsError::Unreachable { .. } => 3,
                HlsError::HttpStatus { .. } | HlsError::Redirects { .. } => 4,
                _ => 5,
            },
            LucidError::Whep(e) => match e {
                WhepError::Unreachable { .. } => 3,
                WhepError::HttpStatus { .. } => 4,
                WhepError::Stopped => EXIT_OK,
                _ => 5,
            },
            LucidError::Decode(e) => match e {
                DecodeError::Open { .. } => 6,
                DecodeError::Unplayable { .. } => 5,
                DecodeError::Init(_) => 8,
                DecodeError::Stopped => EXIT_OK,
            },
            LucidError::Output(_) => 7,
            LucidError::Daydream(e) => match e {
                DaydreamError::NoKey { .. }
                | DaydreamError::KeyFile { .. }
                | DaydreamError::BadApi { .. } => 2,
                DaydreamError::Network { .. } => 3,
                DaydreamError::Unauthorized { .. }
                | DaydreamError::NoSuchStream { .. }
                | DaydreamError::Rejected { .. } => 4,
                _ => 5,
            },
            LucidError::Render(_) => 8,
            LucidError::EffectsFailed(_) => 1,
            LucidError::Internal { .. } => EXIT_INTERNAL,
        }
    }

    /// True when this is the stop request surfacing through a stage that was waiting (not a
    /// failure: the user asked Lucid to stop before the stream opened).
    pub fn is_stop(&self) -> bool {
        matches!(
            self,
            LucidError::Hls(HlsError::Stopped)
                | LucidError::Decode(DecodeError::Stopped)
                | LucidError::Whep(WhepError::Stopped)
        )
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = LucidError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redacted;
    use std::error::Error as _;

    #[test]
    fn every_kind_maps_to_its_documented_exit_code_and_keeps_its_cause() {
        let url = Redacted::url(&url::Url::parse("http://h/x.m3u8?tkn=s").unwrap());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let unreachable = LucidError::from(HlsError::Unreachable {
            url: url.clone(),
            reason: "refused".into(),
            source: Some(Box::new(io)),
        });
        assert_eq!(unreachable.exit_code(), 3);
        // The cause is kept as the error's source (the stage error is transparent).
        let cause = unreachable.source();
        assert_eq!(cause.map(|c| c.to_string()).as_deref(), Some("refused"));
        let http = LucidError::from(HlsError::HttpStatus {
            url: url.clone(),
            status: 404,
            attempts: 3,
        });
        assert_eq!(http.exit_code(), 4);
        assert!(!http.to_string().contains("tkn=s"), "{http}");
        let open = LucidError::from(DecodeError::Open {
            source_name: Redacted::text("clip.mp4"),
            source: ffmpeg_next::Error::Other { errno: 2 },
        });
        assert_eq!(open.exit_code(), 6);
        assert!(open.source().is_some());
        assert_eq!(LucidError::Usage("x".into()).exit_code(), 2);
        assert_eq!(
            LucidError::Internal {
                thread: "t".into(),
                message: "m".into()
            }
            .exit_code(),
            EXIT_INTERNAL
        );
        assert!(LucidError::from(HlsError::Stopped).is_stop());
    }
}
