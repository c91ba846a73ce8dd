//! WHEP signalling (RFC 9725) over HTTP: one POST of a complete SDP offer, the servers'
//! warm-up and refusal answers, redirects followed by hand, and the DELETE on stop.
//!
//! reqwest would turn a POST into a GET on 301/302, so redirects are followed here, keeping
//! the method and the body; the final URL is the host ICE servers are derived from.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use tracing::{debug, info};
use url::Url;

use crate::error::WhepError;
use crate::lifecycle::Lifecycle;
use crate::redact::{Redacted, redact_text};

/// Redirects followed per POST.
const MAX_REDIRECTS: usize = 5;
/// Retry spacing while the output is not there yet (404/503), as Daydream's OBS plugin does.
pub const NOT_YET_RETRY: Duration = Duration::from_millis(500);
/// Wait after 429 (viewer limit), as Livepeer's and Daydream's players do.
pub const BUSY_RETRY: Duration = Duration::from_secs(2);
/// The most a server's `Retry-After` may make Lucid wait at once.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Bodies of error answers are read up to this much (for the message shown).
const MAX_ERROR_BODY: u64 = 4096;
/// An SDP answer larger than this is not one.
const MAX_ANSWER: u64 = 256 * 1024;

/// What one POST came back with.
#[derive(Debug)]
pub enum Reply {
    /// 201 (or 200) with an SDP answer.
    Answer(Answered),
    /// Not now: try again after this long (404/503 warm-up, 429 viewer limit, a 5xx or a
    /// network error).
    Retry {
        /// How long to wait before the next POST.
        after: Duration,
        /// Why, for the log and the final error (the last status, or 0 for the network).
        status: u16,
        /// The server's words or the network error.
        message: String,
    },
}

/// A session the server accepted.
#[derive(Debug)]
pub struct Answered {
    /// The SDP answer.
    pub sdp: String,
    /// The URL that answered, after redirects: its host is the one for ICE.
    pub endpoint: Url,
    /// The session resource (`Location`), to DELETE on stop; Livepeer and Daydream send none.
    pub resource: Option<Url>,
}

/// What a status code means to a WHEP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The answer is in the body.
    Accepted,
    /// Follow `Location`, keeping the POST.
    Redirect,
    /// The output does not exist yet (404, 503): retry soon.
    NotYet,
    /// The viewer limit (429): retry after a longer pause.
    Busy,
    /// A server or gateway hiccup (500, 502, 504): retry with backoff.
    ServerError,
    /// A refusal that retrying cannot change (406, 401, 403, 415, 400, ...).
    Refused,
}

/// Sorts a status code (Livepeer's catalyst and Daydream's gateway, see streams.md).
pub fn verdict(status: u16) -> Verdict {
    match status {
        200 | 201 => Verdict::Accepted,
        301 | 302 | 303 | 307 | 308 => Verdict::Redirect,
        404 | 503 => Verdict::NotYet,
        429 => Verdict::Busy,
        500 | 502 | 504 => Verdict::ServerError,
        _ => Verdict::Refused,
    }
}

/// The HTTP side of a WHEP session.
#[derive(Clone)]
pub struct Signalling {
    http: Client,
    lifecycle: Lifecycle,
}

impl Signalling {
    /// A client that follows no redirects by itself.
    pub fn new(lifecycle: Lifecycle) -> Self {
        let http = Client::builder()
            .user_agent(concat!("lucid/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Signalling { http, lifecycle }
    }

    /// One offer, following redirects. `Err` for a refusal that retrying cannot change.
    pub fn post_offer(&self, url: &Url, offer: &str, attempts: u32) -> Result<Reply, WhepError> {
        let mut target = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let sent = self
                .http
                .post(target.clone())
                .header(CONTENT_TYPE, "application/sdp")
                .body(offer.to_owned())
                .send();
            let response = match sent {
                Ok(r) => r,
                Err(e) => {
                    return Ok(Reply::Retry {
                        after: NOT_YET_RETRY,
                        status: 0,
                        message: innermost(&e),
                    });
                }
            };
            let status = response.status().as_u16();
            match verdict(status) {
                Verdict::Redirect => {
                    let Some(next) = redirect_target(&response, &target) else {
                        return Err(refused(
                            url,
                            status,
                            "a redirect without a usable Location".into(),
                            attempts,
                        ));
                    };
                    debug!("WHEP: {status} to {}", Redacted::url(&next));
                    target = next;
                }
                Verdict::Accepted => {
                    let resource = response
                        .headers()
                        .get(LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|l| target.join(l).ok());
                    let sdp =
                        read_text(response, MAX_ANSWER).map_err(|reason| WhepError::BadAnswer {
                            url: Redacted::url(url),
                            reason,
                        })?;
                    if !sdp.trim_start().starts_with("v=") {
                        return Err(WhepError::BadAnswer {
                            url: Redacted::url(url),
                            reason: "the body is not SDP".into(),
                        });
                    }
                    return Ok(Reply::Answer(Answered {
                        sdp,
                        endpoint: target,
                        resource,
                    }));
                }
                verdict => {
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                    let message = read_text(response, MAX_ERROR_BODY)
                        .map(|t| one_line(&t))
                        .unwrap_or_default();
                    let after = match verdict {
                        Verdict::NotYet => NOT_YET_RETRY,
                        Verdict::Busy => retry_after.unwrap_or(BUSY_RETRY),
                        Verdict::ServerError => retry_after.unwrap_or(Duration::from_secs(1)),
                        _ => return Err(refused(url, status, message, attempts)),
                    };
                    return Ok(Reply::Retry {
                        after,
                        status,
                        message,
                    });
                }
            }
        }
        Err(refused(
            url,
            310,
            format!("more than {MAX_REDIRECTS} redirects"),
            attempts,
        ))
    }

    /// Where the endpoint redirects to (a HEAD, redirects followed by hand, as Livepeer's
    /// player does to learn its regional node); the URL itself when it does not redirect
    /// or does not answer HEAD.
    pub fn resolve(&self, url: &Url) -> Url {
        let mut target = url.clone();
        for _ in 0..MAX_REDIRECTS {
            let Ok(response) = self
                .http
                .head(target.clone())
                .timeout(Duration::from_secs(2))
                .send()
            else {
                break;
            };
            if verdict(response.status().as_u16()) != Verdict::Redirect {
                break;
            }
            match redirect_target(&response, &target) {
                Some(next) => target = next,
                None => break,
            }
        }
        target
    }

    /// Posts `offer` until the server answers, retrying warm-up and busy answers for up to
    /// `wait`. Every attempt is counted and bounded by `wait`.
    pub fn offer_until_answered(
        &self,
        url: &Url,
        offer: &str,
        wait: Duration,
    ) -> Result<Answered, WhepError> {
        let deadline = Instant::now() + wait;
        let mut attempts = 0u32;
        let mut told = false;
        loop {
            if self.lifecycle.stopping() {
                return Err(WhepError::Stopped);
            }
            attempts += 1;
            let (after, status, message) = match self.post_offer(url, offer, attempts)? {
                Reply::Answer(a) => return Ok(a),
                Reply::Retry {
                    after,
                    status,
                    message,
                } => (after, status, message),
            };
            if !told {
                told = true;
                let what = match status {
                    0 => format!("not reachable ({message})"),
                    429 => "at its viewer limit (429)".to_string(),
                    s => format!("not ready ({s})"),
                };
                info!(
                    "WHEP endpoint {} is {what}; retrying for up to {:.0}s",
                    Redacted::url(url),
                    wait.as_secs_f64()
                );
            }
            let now = Instant::now();
            if now + after > deadline {
                return Err(if status == 0 {
                    WhepError::Unreachable {
                        url: Redacted::url(url),
                        reason: message,
                        source: None,
                    }
                } else {
                    WhepError::HttpStatus {
                        url: Redacted::url(url),
                        status,
                        message,
                        attempts,
                    }
                });
            }
            if !self.sleep(after) {
                return Err(WhepError::Stopped);
            }
        }
    }

    /// Ends the session on the server, when it gave a resource URL. Best effort, short.
    pub fn delete(&self, resource: &Url) {
        let result = self
            .http
            .delete(resource.clone())
            .timeout(Duration::from_millis(500))
            .send();
        match result {
            Ok(r) => debug!("WHEP DELETE: {}", r.status()),
            Err(e) => debug!("WHEP DELETE failed: {}", innermost(&e)),
        }
    }

    /// Sleeps in small steps; false when a stop came first.
    pub fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.lifecycle.stopping() {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(20)));
        }
    }
}

/// Where a redirect points, resolved against the URL that answered; http(s) only.
fn redirect_target(response: &reqwest::blocking::Response, base: &Url) -> Option<Url> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| base.join(l).ok())
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

fn refused(url: &Url, status: u16, message: String, attempts: u32) -> WhepError {
    WhepError::HttpStatus {
        url: Redacted::url(url),
        status,
        message,
        attempts,
    }
}

/// Reads a body up to `cap` bytes as text.
fn read_text(response: reqwest::blocking::Response, cap: u64) -> Result<String, String> {
    let body = crate::source::read_capped(response, cap)?;
    String::from_utf8(body).map_err(|_| "the body is not text".to_string())
}

/// A server's message as one short line, control characters and secrets removed.
fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    redact_text(line.trim()).into_owned()
}

/// The innermost cause of a request error, in a few words ("Connection refused").
fn innermost(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if e.is_timeout() {
        "timed out".into()
    } else {
        redact_text(&cause.to_string()).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_the_way_livepeer_and_daydream_use_them() {
        assert_eq!(verdict(201), Verdict::Accepted);
        assert_eq!(verdict(307), Verdict::Redirect);
        assert_eq!(verdict(302), Verdict::Redirect);
        assert_eq!(verdict(404), Verdict::NotYet);
        assert_eq!(verdict(503), Verdict::NotYet);
        assert_eq!(verdict(429), Verdict::Busy);
        assert_eq!(verdict(502), Verdict::ServerError);
        for refusal in [400, 401, 403, 406, 415, 418] {
            assert_eq!(verdict(refusal), Verdict::Refused, "{refusal}");
        }
    }

    #[test]
    fn server_messages_become_one_clean_line() {
        assert_eq!(one_line("no\nstream\x1b[31m here "), "no stream [31m here");
        assert_eq!(one_line(&"x".repeat(500)).len(), 200);
    }
}
