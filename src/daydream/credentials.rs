//! The Daydream API key: from `DAYDREAM_API_KEY`, or from `$XDG_CONFIG_HOME/lucid/daydream-api-key`
//! (a file only its owner may read). The key prints as `***` everywhere; what is said about
//! it is where it came from.

use std::fmt;
use std::path::Path;

// The key's facts live with the error type that names them (a leaf module).
use crate::error::DaydreamError;
pub use crate::error::daydream::{KEY_ENV, KEY_FILE, KeySource};

/// Largest key file read (keys are tens of bytes).
const MAX_KEY_BYTES: u64 = 4096;

/// A Daydream API key. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    secret: String,
    /// Where it came from.
    pub source: KeySource,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey(*** from {})", self.source)
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl ApiKey {
    /// A key as given (tests, or callers that found it elsewhere).
    pub fn new(secret: impl Into<String>, source: KeySource) -> ApiKey {
        ApiKey {
            secret: secret.into(),
            source,
        }
    }

    /// The `Authorization` header's value. The only way to the secret.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.secret)
    }

    /// The secret itself, for masking it out of text that might carry it.
    pub(super) fn secret(&self) -> &str {
        &self.secret
    }

    /// The key from the environment (first) or the key file in `config_dir`.
    pub fn find(env: Option<String>, config_dir: Option<&Path>) -> Result<ApiKey, DaydreamError> {
        if let Some(secret) = env.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) {
            return Ok(ApiKey::new(secret, KeySource::Env));
        }
        let Some(dir) = config_dir else {
            return Err(DaydreamError::NoKey { looked_in: None });
        };
        let path = dir.join(KEY_FILE);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(DaydreamError::NoKey {
                looked_in: Some(path),
            }),
            Err(e) => Err(DaydreamError::KeyFile {
                path,
                what: "cannot be read".into(),
                cause: Some(e),
            }),
            Ok(meta) => read_key_file(&path, &meta),
        }
    }
}

fn read_key_file(path: &Path, meta: &std::fs::Metadata) -> Result<ApiKey, DaydreamError> {
    let fail = |what: String, cause: Option<std::io::Error>| DaydreamError::KeyFile {
        path: path.to_path_buf(),
        what,
        cause,
    };
    if !meta.is_file() {
        return Err(fail("is not a regular file".into(), None));
    }
    if meta.len() > MAX_KEY_BYTES {
        return Err(fail(format!("is over {MAX_KEY_BYTES} bytes"), None));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(fail(
                format!(
                    "can be read by other users (mode {:o}): run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                ),
                None,
            ));
        }
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail("cannot be read".into(), Some(e)))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(fail("is empty".into(), None));
    }
    Ok(ApiKey::new(secret, KeySource::File(path.to_path_buf())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_environment_comes_first_and_the_key_never_prints() {
        let key = ApiKey::find(Some(" sk_live_123 \n".into()), None).unwrap();
        assert_eq!(key.source, KeySource::Env);
        assert_eq!(key.bearer(), "Bearer sk_live_123");
        assert!(!format!("{key:?} {key}").contains("sk_live_123"));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        std::fs::write(&path, "sk_file_456\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ApiKey::find(None, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("sk_file_456"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = ApiKey::find(Some(String::new()), Some(dir.path())).unwrap();
        assert_eq!(key.source, KeySource::File(path));
        assert_eq!(key.bearer(), "Bearer sk_file_456");
    }

    #[test]
    fn no_key_says_where_lucid_looked() {
        let dir = tempfile::tempdir().unwrap();
        let err = ApiKey::find(None, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(KEY_ENV) && err.contains(KEY_FILE), "{err}");
    }
}
