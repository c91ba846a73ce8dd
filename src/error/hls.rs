//! Errors of the HLS client. Every URL in them is [`Redacted`] when the error is made, so
//! no message can leak a token; retry decisions ask [`HlsError::is_transient`].

use crate::redact::Redacted;

/// A cause kept behind an HLS error (reqwest's or std's error).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the HLS client could not (or can no longer) deliver the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HlsError {
    /// The host could not be reached at all (DNS, refused connection, timeout, reset).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL that was requested.
        url: Redacted,
        /// The innermost cause, in a few words.
        reason: String,
        /// The HTTP client's error.
        #[source]
        source: Option<Cause>,
    },
    /// The server kept answering with an HTTP error.
    #[error("{url} answered HTTP {status} after {attempts} attempts")]
    HttpStatus {
        /// The URL that was requested.
        url: Redacted,
        /// The last status code seen.
        status: u16,
        /// How many requests were made.
        attempts: u32,
    },
    /// The server's redirects go round in a loop (or on past reqwest's limit of 10): no
    /// retry will change that.
    #[error("{url}: {reason}")]
    Redirects {
        /// The URL that was requested.
        url: Redacted,
        /// What reqwest said.
        reason: String,
    },
    /// The server answered with a message instead of a playlist: MistServer's plain-text
    /// "Stream open failed", or `#EXT-X-ERROR:` inside a playlist. Such a stream is not
    /// live (yet); the message is shown as the server wrote it.
    #[error("{url}: the server says {message:?}")]
    ServerMessage {
        /// The URL that was requested.
        url: Redacted,
        /// What the server said (one line, control characters removed).
        message: String,
        /// True for the answers known to mean "not live yet" (MistServer's "Stream open
        /// failed", a playlist's `#EXT-X-ERROR`): those are waited on, anything else (a
        /// misspelt URL that serves a text file) ends the run at once.
        not_live: bool,
    },
    /// A live playlist that lists no segments yet (Daydream's warm-up).
    #[error("{url}: the live playlist stayed empty")]
    EmptyLive {
        /// The media playlist.
        url: Redacted,
    },
    /// The body is not an HLS playlist (an HTML page, garbage, a malformed tag).
    #[error("{url} is not an HLS playlist: {reason}")]
    NotAPlaylist {
        /// The URL that was requested.
        url: Redacted,
        /// Why the body was rejected.
        reason: String,
    },
    /// A playlist value outside what Lucid accepts (see `playlist::check_media`).
    #[error("{url}: {reason}")]
    BadValue {
        /// The playlist.
        url: Redacted,
        /// Which value and why.
        reason: String,
    },
    /// A body larger than its cap (a playlist, or a segment for its bandwidth).
    #[error("{url}: the {what} is larger than {limit} bytes")]
    TooLarge {
        /// The URL that was requested.
        url: Redacted,
        /// "playlist", "segment", "init segment".
        what: &'static str,
        /// The cap that was hit.
        limit: u64,
    },
    /// The stream exists but cannot be played (encrypted, ended without segments, gone).
    #[error("cannot play {url}: {reason}")]
    Unplayable {
        /// The stream.
        url: Redacted,
        /// What is missing or unsupported.
        reason: String,
    },
    /// Lucid is stopping; the request was abandoned. Not a failure.
    #[error("stopped")]
    Stopped,
}

impl HlsError {
    /// True when trying again later may succeed: the network, 404 (a stream that is not up
    /// yet), 408/425/429 and 5xx, a server message, an empty live playlist.
    pub fn is_transient(&self) -> bool {
        match self {
            HlsError::Unreachable { .. } | HlsError::EmptyLive { .. } => true,
            HlsError::ServerMessage { not_live, .. } => *not_live,
            HlsError::HttpStatus { status, .. } => {
                matches!(status, 404 | 408 | 425 | 429) || *status >= 500
            }
            HlsError::NotAPlaylist { .. }
            | HlsError::Redirects { .. }
            | HlsError::BadValue { .. }
            | HlsError::TooLarge { .. }
            | HlsError::Unplayable { .. }
            | HlsError::Stopped => false,
        }
    }

    /// True for the answers of a stream that is not up yet (404, an empty live playlist, a
    /// server's "not live" message), as opposed to a fault of one that is (5xx, a
    /// timeout): waiting for the first is not a delayed load of the second.
    pub fn means_not_live_yet(&self) -> bool {
        match self {
            HlsError::EmptyLive { .. } => true,
            HlsError::ServerMessage { not_live, .. } => *not_live,
            HlsError::HttpStatus { status, .. } => *status == 404,
            _ => false,
        }
    }

    /// A few words for "retrying because ..." log lines.
    pub fn short_reason(&self) -> String {
        match self {
            HlsError::HttpStatus { status, .. } => format!("HTTP {status}"),
            HlsError::Unreachable { reason, .. } => reason.clone(),
            HlsError::ServerMessage { message, .. } => format!("the server says {message:?}"),
            HlsError::EmptyLive { .. } => "the live playlist is empty".into(),
            other => other.to_string(),
        }
    }

    /// The same error with the number of requests made, for errors that count them.
    pub fn with_attempts(self, attempts: u32) -> HlsError {
        match self {
            HlsError::HttpStatus { url, status, .. } => HlsError::HttpStatus {
                url,
                status,
                attempts,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_decisions_come_from_the_kind_not_the_text() {
        let url = Redacted::text("http://h/x");
        let status = |status| HlsError::HttpStatus {
            url: url.clone(),
            status,
            attempts: 1,
        };
        assert!(status(404).is_transient());
        assert!(status(503).is_transient());
        assert!(status(429).is_transient());
        assert!(!status(403).is_transient());
        assert!(!status(410).is_transient());
        assert!(status(404).means_not_live_yet());
        assert!(!status(503).means_not_live_yet());
        let message = |message: &str, not_live| HlsError::ServerMessage {
            url: url.clone(),
            message: message.into(),
            not_live,
        };
        assert!(message("Stream open failed", true).is_transient());
        assert!(!message("hello, this is a text file", false).is_transient());
        let big = HlsError::TooLarge {
            url,
            what: "playlist",
            limit: 1,
        };
        assert!(!big.is_transient());
        assert!(!HlsError::Stopped.is_transient());
    }
}
