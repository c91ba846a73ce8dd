//! What can go wrong talking to Daydream. Retry decisions ask [`DaydreamError::is_transient`],
//! never the message text. No variant carries the API key: messages say where it came from.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable that holds the key.
pub const KEY_ENV: &str = "DAYDREAM_API_KEY";
/// The key file's name in Lucid's config folder.
pub const KEY_FILE: &str = "daydream-api-key";

/// Where the key came from: said in errors instead of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `DAYDREAM_API_KEY`.
    Env,
    /// The key file.
    File(PathBuf),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Env => write!(f, "the {KEY_ENV} environment variable"),
            KeySource::File(p) => write!(f, "the key file {}", p.display()),
        }
    }
}

/// A Daydream failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaydreamError {
    /// No key anywhere.
    #[error(
        "no Daydream API key: set {KEY_ENV}{}",
        looked_in.as_ref().map(|p| format!(" or write it to {} (mode 600)", p.display())).unwrap_or_else(|| format!(" or write it to $XDG_CONFIG_HOME/lucid/{KEY_FILE} (mode 600)"))
    )]
    NoKey {
        /// The key file Lucid looked for.
        looked_in: Option<PathBuf>,
    },
    /// The key file exists but cannot be used.
    #[error("the Daydream key file {} {what}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, in a few words.
        what: String,
        /// The I/O error, when there is one.
        #[source]
        cause: Option<std::io::Error>,
    },
    /// `--daydream-api` is not a usable URL.
    #[error("--daydream-api {url}: {why}")]
    BadApi {
        /// The URL as given.
        url: String,
        /// Why.
        why: String,
    },
    /// 401 or 403: the key was refused.
    #[error("Daydream refused the API key from {key_from} (HTTP {status}: {message})")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// Where the key came from.
        key_from: KeySource,
        /// Daydream's message.
        message: String,
    },
    /// 404 for a stream.
    #[error("no such stream: Daydream has no stream {id}")]
    NoSuchStream {
        /// The id asked for.
        id: String,
    },
    /// 429.
    #[error("Daydream asks to slow down (HTTP 429)")]
    RateLimited {
        /// Daydream's Retry-After.
        retry_after: Option<Duration>,
    },
    /// A 5xx answer.
    #[error("Daydream failed (HTTP {status}: {message})")]
    Server {
        /// The status.
        status: u16,
        /// Daydream's message.
        message: String,
    },
    /// Another 4xx: the request was refused (a 400 for a bad parameter value).
    #[error("Daydream refused the request (HTTP {status}: {message})")]
    Rejected {
        /// The status.
        status: u16,
        /// Daydream's message.
        message: String,
    },
    /// Daydream could not be reached, or the answer could not be read.
    #[error("{what}: {cause}")]
    Network {
        /// What Lucid was doing.
        what: String,
        /// The innermost cause, with the key masked.
        cause: String,
    },
    /// The answer is not what the API documents.
    #[error("Daydream's answer: {what}")]
    BadAnswer {
        /// What was wrong.
        what: String,
    },
}

impl DaydreamError {
    /// True when trying again later may work (rate limits, server errors, network loss).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            DaydreamError::RateLimited { .. }
                | DaydreamError::Server { .. }
                | DaydreamError::Network { .. }
        )
    }
}
