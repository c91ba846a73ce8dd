//! `--http ADDR:PORT`: the remote API for installations, watched and steered from
//! elsewhere (a technician's laptop, a monitoring server).
//!
//! - `GET /api/status`: the same object as a `--stats-json` line.
//! - `GET /metrics`: Prometheus text ([`metrics`], pure).
//! - `GET /api/snapshot.jpg[?width=N]`: the output frame now, as a JPEG.
//! - `POST /api/stop`: ends the show as SIGTERM does (a kiosk ignores keys and close).
//! - `POST /api/osc` with `{"address": "/lucid/...", "args": [...]}`: the whole OSC address
//!   space; 200 once applied, 400 with the reason.
//!
//! With `--http-token-file`, every request needs `Authorization: Bearer <token>` (401
//! without; compared in constant time, never logged); a non-loopback address without a
//! token is refused at start. [`server`] runs axum on a tokio runtime of its own thread
//! and talks to the frame loop only through channels ([`RemoteLink`]); [`plugin`] is the
//! frame loop's side.

pub mod metrics;
mod plugin;
pub mod server;

use std::net::SocketAddr;
use std::path::Path;

pub use plugin::RemotePlugin;
pub use server::RemoteLink;

/// The largest token file read.
const MAX_TOKEN_BYTES: u64 = 4096;

/// What `--http` and `--http-token-file` ask for, checked.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// Where the API listens.
    pub bind: SocketAddr,
    /// The bearer token every request must carry, when one is set.
    pub token: Option<Token>,
}

impl RemoteConfig {
    /// `--http ADDR:PORT` (or a bare port: 127.0.0.1) and `--http-token-file FILE`.
    pub fn parse(http: &str, token_file: Option<&Path>) -> Result<RemoteConfig, String> {
        let http = http.trim();
        let bind = match http.parse::<u16>() {
            Ok(port) => SocketAddr::from(([127, 0, 0, 1], port)),
            Err(_) => http.parse::<SocketAddr>().map_err(|_| {
                format!("--http {http}: use ADDR:PORT (127.0.0.1:8080) or a port on 127.0.0.1")
            })?,
        };
        let token = token_file.map(Token::read).transpose()?;
        if token.is_none() && !bind.ip().is_loopback() {
            return Err(format!(
                "--http {bind}: anyone on that network could drive the show; add --http-token-file FILE, or listen on 127.0.0.1"
            ));
        }
        Ok(RemoteConfig { bind, token })
    }
}

/// A bearer token. Never printed: `Debug` shows only that there is one.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads a token file: a regular file others cannot read (like the Daydream key), not
    /// empty, its first line the token.
    pub fn read(path: &Path) -> Result<Token, String> {
        let fail = |what: String| format!("--http-token-file {}: {what}", path.display());
        let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
        if !meta.is_file() {
            return Err(fail("is not a regular file".into()));
        }
        if meta.len() > MAX_TOKEN_BYTES {
            return Err(fail(format!("is over {MAX_TOKEN_BYTES} bytes")));
        }
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(fail(format!(
                    "can be read by other users (mode {:o}): run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                )));
            }
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.len() < 16 {
            return Err(fail("holds no token of 16 characters or more".into()));
        }
        Ok(Token(token.to_string()))
    }

    /// Whether an `Authorization` header carries this token: `Bearer <token>` (scripts,
    /// Prometheus), or `Basic` with the token as the password (what a browser sends once
    /// its login prompt was answered: the web remote). The comparison takes the same time
    /// wherever the first difference is, so timing tells nothing of the token.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(header) = authorization else {
            return false;
        };
        let given = if let Some(bearer) = header.strip_prefix("Bearer ") {
            bearer.trim().to_string()
        } else if let Some(basic) = header.strip_prefix("Basic ") {
            use base64::Engine as _;
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
                return false;
            };
            let text = String::from_utf8_lossy(&decoded).into_owned();
            match text.split_once(':') {
                Some((_, password)) => password.to_string(),
                None => return false,
            }
        } else {
            return false;
        };
        constant_time_eq(given.as_bytes(), self.0.as_bytes())
    }
}

/// Equal bytes, compared without an early exit (the length is not secret: a token's
/// length is its file's, and a wrong length fails at once).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_network_address_needs_a_token_and_the_token_file_must_be_private() {
        assert!(
            RemoteConfig::parse("8080", None)
                .unwrap()
                .bind
                .ip()
                .is_loopback()
        );
        assert!(RemoteConfig::parse("127.0.0.1:8080", None).is_ok());
        let e = RemoteConfig::parse("0.0.0.0:8080", None).unwrap_err();
        assert!(e.contains("add --http-token-file"), "{e}");
        assert!(
            RemoteConfig::parse("localhost", None)
                .unwrap_err()
                .starts_with("--http localhost")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "0123456789abcdef-secret\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = RemoteConfig::parse("0.0.0.0:8080", Some(&file)).unwrap_err();
        assert!(e.contains("can be read by other users"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = RemoteConfig::parse("0.0.0.0:8080", Some(&file)).unwrap();
        let token = c.token.unwrap();
        assert!(!format!("{token:?}").contains("secret"));
        assert!(token.admits(Some("Bearer 0123456789abcdef-secret")));
        assert!(!token.admits(Some("Bearer 0123456789abcdef-secreT")));
        assert!(!token.admits(Some("0123456789abcdef-secret")));
        // A browser's Basic login: any user, the token as the password.
        // base64("remote:0123456789abcdef-secret")
        assert!(token.admits(Some("Basic cmVtb3RlOjAxMjM0NTY3ODlhYmNkZWYtc2VjcmV0")));
        assert!(!token.admits(Some("Basic cmVtb3RlOnNlY3JldA==")));
        assert!(!token.admits(Some("Basic !!!")));
        assert!(!token.admits(None));
        std::fs::write(&file, "short\n").unwrap();
        assert!(Token::read(&file).unwrap_err().contains("16 characters"));
    }
}
