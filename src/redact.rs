//! Keeps credentials out of everything Lucid prints: log lines, the status line,
//! `--stats-json`, error messages and the window title.
//!
//! Livepeer and catalyst put access tokens in query strings (`?tkn=`, `?jwt=`), signed CDNs
//! add `sig`/`signature`/`Expires`-style parameters, and RTMP/SRT URLs may carry
//! `user:password@`. Those values are replaced by `***`; the parameter names stay, so a
//! log still shows *that* a token was sent. Pure functions, no Bevy.

use std::borrow::Cow;
use std::fmt;

use url::Url;

/// What a redacted value reads as.
pub const MASK: &str = "***";

/// Query parameter names whose values are credentials (compared case-insensitively; a name
/// also counts when it ends in one of these after `_` or `-`, as in `access_token` or
/// `X-Amz-Signature`).
const SECRET_KEYS: &[&str] = &[
    "tkn",
    "token",
    "jwt",
    "key",
    "apikey",
    "sig",
    "signature",
    "auth",
    "authorization",
    "password",
    "pass",
    "pwd",
    "secret",
    "credential",
    "credentials",
    "session",
    "passphrase",
    "streamid",
    "policy",
];

fn is_secret_key(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|k| {
        lower == *k
            || lower
                .strip_suffix(k)
                .is_some_and(|head| head.ends_with('_') || head.ends_with('-'))
    })
}

/// A URL (or any input name) with its credentials masked, for display only. Built only
/// through [`Redacted::url`] or [`Redacted::text`], so holding one means it is safe to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    /// A parsed URL, with userinfo and secret query values masked.
    pub fn url(url: &Url) -> Redacted {
        Redacted(redact_url(url))
    }

    /// Free text that may be or contain URLs (an FFmpeg input such as
    /// `rtmp://user:pass@host/app`, a message quoting a URL).
    pub fn text(text: &str) -> Redacted {
        Redacted(redact_text(text).into_owned())
    }

    /// The safe text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn redact_url(url: &Url) -> String {
    let mut safe = url.clone();
    if !safe.username().is_empty() {
        let _ = safe.set_username(MASK);
    }
    if safe.password().is_some() {
        let _ = safe.set_password(Some(MASK));
    }
    if safe.query().is_some() {
        let pairs: Vec<(String, String)> = safe
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_key(&k) {
                    MASK.to_string()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        // Rebuilt by hand so `***` stays readable instead of being percent-encoded.
        let query = pairs
            .iter()
            .map(|(k, v)| {
                if v == MASK {
                    format!("{}={MASK}", encode(k))
                } else if v.is_empty() {
                    encode(k).into_owned()
                } else {
                    format!("{}={}", encode(k), encode(v))
                }
            })
            .collect::<Vec<_>>()
            .join("&");
        safe.set_query(Some(&query));
    }
    safe.to_string()
}

fn encode(s: &str) -> Cow<'_, str> {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/:".contains(&b))
    {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(url::form_urlencoded::byte_serialize(s.as_bytes()).collect())
    }
}

/// Masks every URL-looking word in `text` (`scheme://...` up to whitespace or a quote).
pub fn redact_text(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: letters, digits, + - . right before "://".
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map(|i| i + 1)
            .unwrap_or(0);
        let end = rest[at..]
            .find(|c: char| c.is_whitespace() || "\"'<>()".contains(c))
            .map(|i| at + i)
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        let word = &rest[start..end];
        match Url::parse(word) {
            Ok(u) if start < at => out.push_str(&redact_url(&u)),
            _ => out.push_str(word),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_userinfo_are_masked_other_parameters_kept() {
        let u = Url::parse(
            "https://user:hunter2@cdn.example/hls/x/index.m3u8?mTrack=0&iMsn=12&tkn=SECRET&jwt=eyJ.x.y&X-Amz-Signature=abc&access_token=t0k",
        )
        .unwrap();
        let r = Redacted::url(&u).to_string();
        for secret in ["hunter2", "user:", "SECRET", "eyJ", "abc", "t0k"] {
            assert!(!r.contains(secret), "{secret} leaked in {r}");
        }
        assert!(r.contains("mTrack=0&iMsn=12"), "{r}");
        assert!(r.contains("tkn=***") && r.contains("jwt=***"), "{r}");
        assert!(r.starts_with("https://***:***@cdn.example/"), "{r}");
    }

    #[test]
    fn urls_inside_text_are_masked() {
        let t =
            "cannot open rtmp://bob:pw@127.0.0.1/live/x?key=k1 (refused); see https://h/p?sig=s2";
        let r = redact_text(t);
        assert!(
            !r.contains("pw@") && !r.contains("k1") && !r.contains("s2"),
            "{r}"
        );
        assert!(r.contains("(refused); see https://h/p?sig=***"), "{r}");
        assert_eq!(redact_text("clip.mp4"), "clip.mp4");
    }

    #[test]
    fn parameter_names_that_merely_contain_a_secret_word_are_kept() {
        let u = Url::parse("http://h/p?monkey=1&keyframe=2&tkn=3").unwrap();
        assert_eq!(
            Redacted::url(&u).as_str(),
            "http://h/p?monkey=1&keyframe=2&tkn=***"
        );
    }
}
