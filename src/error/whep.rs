//! Errors of the WHEP client. URLs in them are [`Redacted`] when the error is made, so no
//! message can leak a token.

use std::time::Duration;

use crate::redact::Redacted;

/// A cause kept behind a WHEP error (reqwest's, std's or str0m's error).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why WebRTC playback could not start or cannot go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhepError {
    /// The WHEP endpoint could not be reached (DNS, refused connection, timeout).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The endpoint.
        url: Redacted,
        /// The innermost cause, in a few words.
        reason: String,
        /// The HTTP client's error.
        #[source]
        source: Option<Cause>,
    },
    /// The endpoint refused the offer, or kept saying "not yet" for longer than `--wait`.
    #[error("{url} answered HTTP {status}{} after {attempts} offer(s)", detail(.message))]
    HttpStatus {
        /// The endpoint.
        url: Redacted,
        /// The last status code.
        status: u16,
        /// The server's own words, when it gave any (one line).
        message: String,
        /// How many offers were posted.
        attempts: u32,
    },
    /// The server answered, but not with a usable SDP answer (or str0m refused it).
    #[error("{url}: the SDP answer cannot be used: {reason}")]
    BadAnswer {
        /// The endpoint.
        url: Redacted,
        /// What was wrong.
        reason: String,
    },
    /// The WebRTC connection (ICE, DTLS) did not come up, or media stopped and did not
    /// come back within `--wait`.
    #[error("{url}: {reason}")]
    Connection {
        /// The endpoint.
        url: Redacted,
        /// What happened.
        reason: String,
        /// How long Lucid tried.
        waited: Duration,
    },
    /// The local UDP socket or the WebRTC stack failed.
    #[error("WebRTC failed: {reason}")]
    Local {
        /// What failed.
        reason: String,
        /// The cause.
        #[source]
        source: Option<Cause>,
    },
    /// Lucid was asked to stop. Not a failure.
    #[error("stopped")]
    Stopped,
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

impl WhepError {
    /// A few words for the status line's "why": `WebRTC answered 406`.
    pub fn short_reason(&self) -> String {
        match self {
            WhepError::Unreachable { reason, .. } => format!("WebRTC unreachable ({reason})"),
            WhepError::HttpStatus { status, .. } => format!("WebRTC answered {status}"),
            WhepError::BadAnswer { .. } => "WebRTC answer unusable".into(),
            WhepError::Connection { reason, .. } => format!("WebRTC {reason}"),
            WhepError::Local { reason, .. } => format!("WebRTC failed ({reason})"),
            WhepError::Stopped => "stopped".into(),
        }
    }
}
