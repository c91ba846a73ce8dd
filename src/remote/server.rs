//! The HTTP server: axum on a current-thread tokio runtime in the `lucid-http` thread. It
//! never touches the show: status comes in on a watch channel the frame loop fills, and
//! OSC goes out as [`RemoteOsc`]s on a bounded queue, each answered by the frame loop
//! once applied. A full queue answers 503 at once (counted): a flood of requests never
//! holds a frame up.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use rosc::{OscMessage, OscType};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::{RemoteConfig, Token};
use crate::control::RemoteOsc;
use crate::error::{LucidError, Result};
use crate::lifecycle::Lifecycle;
use crate::status::StatusSnapshot;

/// Requests queued for the frame loop; beyond it, 503.
const REQUEST_QUEUE: usize = 64;
/// How long a request waits for the frame loop to apply it.
const APPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the server looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// A picture of the output asked for (`GET /api/snapshot.jpg`), with where it goes.
#[derive(Debug)]
pub struct SnapshotRequest {
    /// `?width=`: scaled down to this width (aspect kept); never up.
    pub width: Option<u32>,
    /// The JPEG's bytes, or why there is none.
    pub reply: oneshot::Sender<std::result::Result<Vec<u8>, String>>,
}

/// Snapshots asked for at once, at most; beyond it, 503.
const SNAPSHOT_QUEUE: usize = 4;

/// The frame loop's ends of the server's channels.
#[derive(Clone)]
pub struct RemoteLink {
    /// OSC messages to apply, each with where its answer goes.
    pub requests: Receiver<RemoteOsc>,
    /// Snapshots to take.
    pub snapshots: Receiver<SnapshotRequest>,
    /// Where the latest status goes.
    pub status: Arc<watch::Sender<Option<Arc<StatusSnapshot>>>>,
    /// Where the show's controls and their values go (the web remote's `/api/show`).
    pub show: Arc<watch::Sender<Option<Arc<serde_json::Value>>>>,
    /// Requests counted by the server.
    pub counters: Arc<RemoteCounters>,
}

/// What the server counted.
#[derive(Debug, Default)]
pub struct RemoteCounters {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Refused for a missing or wrong token.
    pub unauthorized: AtomicU64,
    /// Refused because the frame loop's queue was full.
    pub busy: AtomicU64,
}

#[derive(Clone)]
struct Shared {
    lifecycle: Lifecycle,
    token: Option<Token>,
    requests: Sender<RemoteOsc>,
    snapshots: Sender<SnapshotRequest>,
    status: watch::Receiver<Option<Arc<StatusSnapshot>>>,
    show: watch::Receiver<Option<Arc<serde_json::Value>>>,
    counters: Arc<RemoteCounters>,
}

/// Binds `config.bind` now (a port in use is a usage error before the show starts) and
/// serves from the `lucid-http` thread until Lucid stops.
pub fn start(config: &RemoteConfig, lifecycle: &Lifecycle) -> Result<RemoteLink> {
    let at = config.bind;
    let listener = std::net::TcpListener::bind(at)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| LucidError::Usage(format!("--http {at}: cannot listen: {e}")))?;
    let (requests_tx, requests) = bounded(REQUEST_QUEUE);
    let (snapshots_tx, snapshots) = bounded(SNAPSHOT_QUEUE);
    let (status, status_rx) = watch::channel(None);
    let (show, show_rx) = watch::channel(None);
    let counters = Arc::new(RemoteCounters::default());
    let shared = Shared {
        lifecycle: lifecycle.clone(),
        token: config.token.clone(),
        requests: requests_tx,
        snapshots: snapshots_tx,
        status: status_rx,
        show: show_rx,
        counters: counters.clone(),
    };
    let l = lifecycle.clone();
    lifecycle.spawn("lucid-http", move || serve(listener, shared, &l));
    info!(
        "HTTP: the remote API on http://{at}/{}",
        if config.token.is_some() {
            " (a bearer token is needed)"
        } else {
            ""
        }
    );
    Ok(RemoteLink {
        requests,
        snapshots,
        status: Arc::new(status),
        show: Arc::new(show),
        counters,
    })
}

fn serve(listener: std::net::TcpListener, shared: Shared, lifecycle: &Lifecycle) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            warn!("HTTP: cannot start ({e}); the show goes on without the remote API");
            return;
        }
    };
    let stop = lifecycle.clone();
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                warn!("HTTP: cannot listen ({e}); the show goes on without the remote API");
                return;
            }
        };
        let app = Router::new()
            .route("/", get(remote_page))
            .route("/api/status", get(status))
            .route("/api/show", get(show))
            .route("/metrics", get(metrics))
            .route("/api/snapshot.jpg", get(snapshot))
            .route("/api/osc", post(osc))
            .route("/api/stop", post(stop_show))
            .layer(middleware::from_fn_with_state(shared.clone(), guard))
            .with_state(shared);
        let stopped = async move {
            while !stop.stopping() {
                tokio::time::sleep(STOP_POLL).await;
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            warn!("HTTP: {e}; the remote API stopped");
        }
    });
}

/// Counts every request and lets through only those with the token (when one is set).
async fn guard(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(token) = &shared.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !token.admits(given) {
            shared.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is needed (Authorization: Bearer <token>)\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

/// The latest status, or `None` while the show is starting (answered 503).
fn latest(shared: &Shared) -> Option<Arc<StatusSnapshot>> {
    shared.status.borrow().clone()
}

fn starting() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "no status yet: the show is starting\n",
    )
        .into_response()
}

async fn status(State(shared): State<Shared>) -> Response {
    match latest(&shared) {
        Some(s) => axum::Json(s.as_ref().clone()).into_response(),
        None => starting(),
    }
}

/// The web remote: one page, embedded in the binary.
async fn remote_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../assets/remote/index.html"),
    )
        .into_response()
}

/// The show's controls and their values now, by OSC address (normalized as a controller
/// sends them), with the crossfader and the cue list.
async fn show(State(shared): State<Shared>) -> Response {
    match shared.show.borrow().clone() {
        Some(v) => axum::Json(v.as_ref().clone()).into_response(),
        None => starting(),
    }
}

async fn metrics(State(shared): State<Shared>) -> Response {
    match latest(&shared) {
        Some(s) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            super::metrics::render(&s),
        )
            .into_response(),
        None => starting(),
    }
}

/// `POST /api/stop`: ends the show as SIGTERM does (outputs finalized); a kiosk's way out.
async fn stop_show(State(shared): State<Shared>) -> Response {
    info!("stop requested over HTTP");
    shared.lifecycle.request_stop();
    (StatusCode::OK, "stopping\n").into_response()
}

/// `GET /api/snapshot.jpg[?width=N]`: the output as it is now, read back from the GPU by
/// the frame loop and encoded off it.
async fn snapshot(
    State(shared): State<Shared>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let width = match query.get("width").map(|w| w.parse::<u32>()) {
        None => None,
        Some(Ok(w)) if w >= 16 => Some(w),
        Some(_) => {
            return (
                StatusCode::BAD_REQUEST,
                "width: a number of pixels, 16 or more\n",
            )
                .into_response();
        }
    };
    let (reply, answer) = oneshot::channel();
    if shared
        .snapshots
        .try_send(SnapshotRequest { width, reply })
        .is_err()
    {
        shared.counters.busy.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::SERVICE_UNAVAILABLE, "busy: try again\n").into_response();
    }
    match tokio::time::timeout(APPLY_TIMEOUT, answer).await {
        Ok(Ok(Ok(jpeg))) => ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        Ok(Ok(Err(why))) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the show did not answer in time\n",
        )
            .into_response(),
    }
}

/// `POST /api/osc` with `{"address": "/lucid/...", "args": [...]}`.
async fn osc(State(shared): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let bad = |why: String| (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return bad("send JSON (Content-Type: application/json)".into());
    }
    let message = match osc_message(&body) {
        Ok(m) => m,
        Err(why) => return bad(why),
    };
    // Checked here too, so a bad address is a 400 without waiting for a frame.
    if let Err(e) = crate::control::osc::parse(&message) {
        return bad(format!("{}: {e}", message.addr));
    }
    let (reply, answer) = oneshot::channel();
    match shared.requests.try_send(RemoteOsc { message, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            shared.counters.busy.fetch_add(1, Ordering::Relaxed);
            return (StatusCode::SERVICE_UNAVAILABLE, "busy: try again\n").into_response();
        }
        Err(TrySendError::Disconnected(_)) => {
            return (StatusCode::SERVICE_UNAVAILABLE, "the show is ending\n").into_response();
        }
    }
    match tokio::time::timeout(APPLY_TIMEOUT, answer).await {
        Ok(Ok(Ok(()))) => (StatusCode::OK, "applied\n").into_response(),
        Ok(Ok(Err(why))) => bad(why),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the show did not answer in time\n",
        )
            .into_response(),
    }
}

/// `{"address": "/lucid/...", "args": [0.5, "text", true]}` as an OSC message: numbers are
/// floats (what controllers send), strings strings, booleans OSC's true and false.
pub fn osc_message(body: &str) -> std::result::Result<OscMessage, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let address = value
        .get("address")
        .and_then(|a| a.as_str())
        .ok_or("no \"address\" (a string such as \"/lucid/freeze\")")?;
    if !address.starts_with('/') {
        return Err(format!("{address:?}: an OSC address starts with /"));
    }
    let args = match value.get("args") {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                serde_json::Value::Number(n) => n
                    .as_f64()
                    .map(|f| OscType::Float(f as f32))
                    .ok_or_else(|| format!("{n}: not a number OSC can carry")),
                serde_json::Value::String(s) => Ok(OscType::String(s.clone())),
                serde_json::Value::Bool(b) => Ok(OscType::Bool(*b)),
                other => Err(format!("{other}: args are numbers, strings or booleans")),
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(other) => return Err(format!("\"args\" is a list, not {other}")),
    };
    Ok(OscMessage {
        addr: address.to_string(),
        args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_becomes_an_osc_message_or_a_reason() {
        let m = osc_message(r#"{"address": "/lucid/effect/0/amount", "args": [0.5]}"#).unwrap();
        assert_eq!(m.addr, "/lucid/effect/0/amount");
        assert_eq!(m.args, vec![OscType::Float(0.5)]);
        let m = osc_message(r#"{"address": "/lucid/daydream/prompt", "args": ["a forest", true]}"#)
            .unwrap();
        assert_eq!(
            m.args,
            vec![OscType::String("a forest".into()), OscType::Bool(true)]
        );
        assert!(
            osc_message(r#"{"address": "/lucid/freeze"}"#)
                .unwrap()
                .args
                .is_empty()
        );
        for (body, needle) in [
            ("{", "not JSON"),
            (r#"{"args": [1]}"#, "no \"address\""),
            (r#"{"address": "lucid"}"#, "starts with /"),
            (r#"{"address": "/x", "args": 1}"#, "is a list"),
            (
                r#"{"address": "/x", "args": [{}]}"#,
                "numbers, strings or booleans",
            ),
        ] {
            let e = osc_message(body).unwrap_err();
            assert!(e.contains(needle), "{body}: {e}");
        }
    }
}
