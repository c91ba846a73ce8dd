//! [`OutputError`]: an output that cannot be written (the output stage's own error type).

use std::path::PathBuf;

/// A cause kept behind an output error.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An output (record file, pipe, stats file, screenshot) that cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {what}{}", path.display(), because(cause))]
pub struct OutputError {
    /// The file, or `stdout`.
    pub path: PathBuf,
    /// What failed, in a few words.
    pub what: String,
    /// The underlying error, when there is one.
    #[source]
    pub cause: Option<Cause>,
}

/// The cause, as the message's tail: a user reads the whole story on one line.
fn because(cause: &Option<Cause>) -> String {
    cause
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default()
}

impl OutputError {
    /// An error with its cause kept.
    pub fn new(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        cause: impl Into<Cause>,
    ) -> OutputError {
        OutputError {
            path: path.into(),
            what: what.into(),
            cause: Some(cause.into()),
        }
    }

    /// An error that is only a sentence.
    pub fn plain(path: impl Into<PathBuf>, what: impl Into<String>) -> OutputError {
        OutputError {
            path: path.into(),
            what: what.into(),
            cause: None,
        }
    }
}
