//! Daydream control: attach to (or create) a Daydream stream, play its output, and steer it
//! live while it plays.
//!
//! - [`credentials`]: the API key (environment or a private key file), never printed.
//! - [`api`]: Daydream's HTTP API; every wire name lives there.
//! - [`steer`] (pure): debounced PATCHes, 429 backoff, rejected values, prompt morphs.
//! - [`worker`]: the `lucid-daydream` thread that owns the API client, polls the status
//!   about once a second and sends the steering's PATCHes.
//! - [`plugin`]: the Bevy side: [`DaydreamState`] for the slate, overlay and status, and
//!   [`SteerCommand`]s from keys and the overlay.

pub mod api;
pub mod credentials;
pub mod cues;
pub mod panel;
pub mod plugin;
pub mod steer;
pub mod worker;

use std::io::Write as _;
use std::path::PathBuf;

use serde_json::{Map, Value};
use tracing::{info, warn};

pub use crate::error::daydream::DaydreamError;
pub use plugin::{DaydreamLink, DaydreamPlugin, DaydreamState, Steer, SteerCommand};

use crate::source::SourceSpec;
use api::{DaydreamApi, StreamInfo, StreamStatus, param};
use credentials::{ApiKey, KEY_ENV};

/// What the command line asks of Daydream, validated.
#[derive(Debug, Clone)]
pub struct DaydreamOptions {
    /// Attach to this stream, or create one.
    pub stream: StreamChoice,
    /// The API's base URL.
    pub api: String,
    /// `--model`: the model of a created stream, or a model change for an attached one.
    pub model: Option<String>,
    /// Parameters from the command line (`--prompt`, `--seed`, ...), by wire name.
    pub params: Map<String, Value>,
    /// Lucid's config folder (`$XDG_CONFIG_HOME/lucid`), for the key file.
    pub config_dir: Option<PathBuf>,
}

/// Which stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamChoice {
    /// `--daydream-stream ID`.
    Attach(String),
    /// `--daydream-create`.
    Create,
}

/// A stream Lucid is attached to, ready to play and steer.
#[derive(Debug)]
pub struct Attached {
    /// The API client (with its key).
    pub api: DaydreamApi,
    /// The stream as Daydream describes it.
    pub stream: StreamInfo,
    /// The model every PATCH names.
    pub model: String,
    /// Parameters to send once attached (an attached stream's command-line parameters).
    pub initial: Map<String, Value>,
    /// The status when Lucid attached.
    pub status: StreamStatus,
    /// What to play.
    pub source: SourceSpec,
}

/// Finds the key, creates or reads the stream, and picks what to play: the status's WHEP
/// URL when there is one, else the output playback id through the usual resolution.
pub fn attach(options: DaydreamOptions) -> Result<Attached, DaydreamError> {
    let key = ApiKey::find(std::env::var(KEY_ENV).ok(), options.config_dir.as_deref())?;
    let api = DaydreamApi::new(&options.api, key)?;
    let mut initial = options.params.clone();
    let stream = match &options.stream {
        StreamChoice::Create => {
            let model = options.model.as_deref().unwrap_or(api::DEFAULT_MODEL);
            let stream = api.create(model, &options.params)?;
            initial.clear();
            // The first lines on stderr, plain, so a script or a person can point OBS at it.
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "daydream stream: {}", stream.id);
            let _ = writeln!(
                err,
                "daydream whip url: {}",
                stream.whip_url.as_deref().unwrap_or("(none given)")
            );
            stream
        }
        StreamChoice::Attach(id) => api.stream(id)?,
    };
    let model = match (&options.stream, &options.model) {
        (StreamChoice::Create, m) => m.clone().unwrap_or_else(|| api::DEFAULT_MODEL.into()),
        (StreamChoice::Attach(_), Some(m)) => {
            if stream.model_id() != Some(m.as_str()) {
                warn!(
                    "--model {m}: changing the model reloads Daydream's pipeline; the output warms up again"
                );
                initial.insert(param::MODEL_ID.into(), Value::String(m.clone()));
            }
            stream.model_id().unwrap_or(m).to_string()
        }
        (StreamChoice::Attach(_), None) => {
            stream.model_id().unwrap_or(api::DEFAULT_MODEL).to_string()
        }
    };
    let status = match api.status(&stream.id) {
        Ok(status) => status,
        // The output may still be starting; the worker keeps asking.
        Err(e) if e.is_transient() => {
            warn!("Daydream's status is not available yet: {e}");
            StreamStatus::default()
        }
        Err(e) => return Err(e),
    };
    let source = match (&status.whep_url, &stream.output_playback_id) {
        (Some(whep), _) => SourceSpec::Whep {
            url: url::Url::parse(whep).map_err(|e| DaydreamError::BadAnswer {
                what: format!("the status's whep_url is not a URL ({e})"),
            })?,
            fallback: None,
        },
        (None, Some(id)) => SourceSpec::Playback {
            id: id.clone(),
            fallback: true,
        },
        (None, None) => {
            return Err(DaydreamError::BadAnswer {
                what: format!(
                    "stream {} has neither a WHEP URL nor an output playback id",
                    stream.id
                ),
            });
        }
    };
    info!(
        "daydream: stream {} ({model}), output {}",
        stream.id,
        if status.ready() { "live" } else { "warming up" }
    );
    Ok(Attached {
        api,
        stream,
        model,
        initial,
        status,
        source,
    })
}

/// `text` with the key masked, for anything that quotes a request or an answer.
pub(crate) fn scrub(text: &str, key: &ApiKey) -> String {
    let secret = key.secret();
    if secret.is_empty() {
        return text.to_string();
    }
    text.replace(secret, "***")
}
