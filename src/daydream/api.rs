//! Daydream's HTTP API as Lucid uses it. Every path, header and JSON field name lives in
//! this module; `../shared/reference/streams.md` (Daydream section) is the contract:
//!
//! - `POST /v1/streams` `{"pipeline":"streamdiffusion","params":{"model_id":..,..}}` → 201
//!   with the stream (`id`, `whip_url`, `output_playback_id`, ...);
//! - `GET /v1/streams/{id}` → the stream;
//! - `GET /v1/streams/{id}/status` → `data.inference_status.{output_fps,last_output_time,
//!   last_error}`, `data.gateway_status.whep_url`;
//! - `PATCH /v1/streams/{id}` `{"pipeline":"streamdiffusion","params":{"model_id":..,
//!   <changed>..}}`, `model_id` always included;
//! - errors `{"success":false,"error":"..","code":"..","status":404}`.
//!
//! Every request carries `Authorization: Bearer <key>`.

use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use url::Url;

use super::DaydreamError;
use super::credentials::ApiKey;
use crate::redact::Redacted;

/// Daydream's API.
pub const DEFAULT_API: &str = "https://api.daydream.live";
/// The only pipeline Lucid drives.
pub const PIPELINE: &str = "streamdiffusion";
/// The model a created stream uses unless `--model` says otherwise.
pub const DEFAULT_MODEL: &str = "stabilityai/sd-turbo";
/// Largest answer body read (a stream object is about a kilobyte).
const MAX_BODY_BYTES: u64 = 1 << 20;

/// Parameter names, as Daydream spells them.
pub mod param {
    /// The model; changing it reloads the pipeline.
    pub const MODEL_ID: &str = "model_id";
    /// Text, or `[[text, weight], ...]`.
    pub const PROMPT: &str = "prompt";
    /// Text.
    pub const NEGATIVE_PROMPT: &str = "negative_prompt";
    /// Integer, or `[[seed, weight], ...]`.
    pub const SEED: &str = "seed";
    /// 1..=100.
    pub const STEPS: &str = "num_inference_steps";
    /// 1-4 non-decreasing steps, each at most `num_inference_steps`.
    pub const T_INDEX_LIST: &str = "t_index_list";
    /// Classifier-free guidance.
    pub const GUIDANCE: &str = "guidance_scale";
    /// Delta.
    pub const DELTA: &str = "delta";
    /// `linear` or `slerp`.
    pub const PROMPT_INTERPOLATION: &str = "prompt_interpolation_method";
    /// The ControlNets: `[{model_id, conditioning_scale, enabled, ...}]`.
    pub const CONTROLNETS: &str = "controlnets";
    /// Skips diffusion (passthrough); reloads the pipeline.
    pub const SKIP_DIFFUSION: &str = "skip_diffusion";
}

/// A stream as Daydream describes it (the fields Lucid reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StreamInfo {
    /// `str_...`.
    pub id: String,
    /// Where a broadcaster (OBS) sends the input.
    #[serde(default)]
    pub whip_url: Option<String>,
    /// The Livepeer playback id of the output.
    #[serde(default)]
    pub output_playback_id: Option<String>,
    /// The parameters as created or last set.
    #[serde(default)]
    pub params: Option<Map<String, Value>>,
}

impl StreamInfo {
    /// The stream's model, when its parameters say.
    pub fn model_id(&self) -> Option<&str> {
        self.params.as_ref()?.get(param::MODEL_ID)?.as_str()
    }
}

/// The status endpoint's answer, reduced to what the slate and the player need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStatus {
    /// Frames a second coming out of the pipeline.
    pub output_fps: Option<f64>,
    /// Set once the pipeline has produced output.
    pub has_output: bool,
    /// Daydream's last inference error.
    pub last_error: Option<String>,
    /// Daydream's word for the inference state, when it gives one.
    pub state: Option<String>,
    /// The output's WebRTC (WHEP) URL, once there is one.
    pub whep_url: Option<String>,
}

impl StreamStatus {
    /// Output is flowing: `output_fps > 0` or a `last_output_time`.
    pub fn ready(&self) -> bool {
        self.has_output || self.output_fps.is_some_and(|f| f > 0.0)
    }

    fn from_json(v: &Value) -> StreamStatus {
        let data = v.get("data").unwrap_or(v);
        let inference = data.get("inference_status");
        let field = |k: &str| inference.and_then(|i| i.get(k));
        let text = |v: Option<&Value>| {
            v.and_then(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Null => None,
                Value::String(_) => None,
                other => Some(other.to_string()),
            })
        };
        StreamStatus {
            output_fps: field("output_fps").and_then(Value::as_f64),
            has_output: field("last_output_time").is_some_and(|t| !t.is_null()),
            last_error: text(field("last_error")),
            state: text(field("status").or_else(|| field("state"))),
            whep_url: text(data.get("gateway_status").and_then(|g| g.get("whep_url"))),
        }
    }
}

/// Daydream's HTTP API with one key.
#[derive(Clone)]
pub struct DaydreamApi {
    http: Client,
    base: Url,
    key: ApiKey,
}

impl std::fmt::Debug for DaydreamApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DaydreamApi({}, key {:?})",
            Redacted::url(&self.base),
            self.key
        )
    }
}

impl DaydreamApi {
    /// A client of the API at `base` (`--daydream-api`).
    pub fn new(base: &str, key: ApiKey) -> Result<DaydreamApi, DaydreamError> {
        let base = Url::parse(base.trim_end_matches('/')).map_err(|e| DaydreamError::BadApi {
            url: base.to_string(),
            why: e.to_string(),
        })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(DaydreamError::BadApi {
                url: base.to_string(),
                why: "not an http(s) URL".into(),
            });
        }
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(same_origin_redirects())
            .build()
            .map_err(|e| DaydreamError::Network {
                what: "starting the HTTP client".into(),
                cause: e.to_string(),
            })?;
        Ok(DaydreamApi { http, base, key })
    }

    /// Where the key came from (for messages).
    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{path}"));
        url
    }

    fn stream_path(id: &str) -> String {
        format!("/v1/streams/{}", urlencode(id))
    }

    /// `GET /v1/streams/{id}`.
    pub fn stream(&self, id: &str) -> Result<StreamInfo, DaydreamError> {
        let answer = self.send(self.http.get(self.url(&Self::stream_path(id))), Some(id))?;
        parse(&answer, "the stream")
    }

    /// `POST /v1/streams`: a new stream running `model` with `params`.
    pub fn create(
        &self,
        model: &str,
        params: &Map<String, Value>,
    ) -> Result<StreamInfo, DaydreamError> {
        let body = request_body(model, params);
        let request = json_body(self.http.post(self.url("/v1/streams")), &body);
        let answer = self.send(request, None)?;
        parse(&answer, "the new stream")
    }

    /// `GET /v1/streams/{id}/status`.
    pub fn status(&self, id: &str) -> Result<StreamStatus, DaydreamError> {
        let path = format!("{}/status", Self::stream_path(id));
        let answer = self.send(self.http.get(self.url(&path)), Some(id))?;
        let value: Value = serde_json::from_str(&answer).map_err(|e| DaydreamError::BadAnswer {
            what: format!("the status is not JSON ({e})"),
        })?;
        Ok(StreamStatus::from_json(&value))
    }

    /// `PATCH /v1/streams/{id}` with `params` (and always `model_id`).
    pub fn update(
        &self,
        id: &str,
        model: &str,
        params: &Map<String, Value>,
    ) -> Result<(), DaydreamError> {
        let body = request_body(model, params);
        let request = json_body(self.http.patch(self.url(&Self::stream_path(id))), &body);
        self.send(request, Some(id)).map(|_| ())
    }

    /// Sends with the key, reads the body (capped), and turns an error status into the
    /// matching [`DaydreamError`].
    fn send(&self, request: RequestBuilder, stream: Option<&str>) -> Result<String, DaydreamError> {
        let response = request
            .header(AUTHORIZATION, self.key.bearer())
            .send()
            .map_err(|e| {
                let cause = super::scrub(&innermost(&e), &self.key);
                if e.is_redirect() {
                    // Refused by `same_origin_redirects`: the same answer every time.
                    return DaydreamError::BadAnswer { what: cause };
                }
                DaydreamError::Network {
                    what: format!("reaching {}", Redacted::url(&self.base)),
                    cause,
                }
            })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        let body = read_capped(response).map_err(|failure| match failure {
            Capped::Read(cause) => DaydreamError::Network {
                what: "reading Daydream's answer".into(),
                cause: super::scrub(&cause, &self.key),
            },
            // The host answered: with more than Lucid reads, which no retry will change.
            Capped::TooLarge => DaydreamError::BadAnswer {
                what: format!("it is over {MAX_BODY_BYTES} bytes"),
            },
        })?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        let message = super::scrub(&error_message(&body), &self.key);
        Err(match status {
            401 | 403 => DaydreamError::Unauthorized {
                status,
                key_from: self.key.source.clone(),
                message,
            },
            404 if stream.is_some() => DaydreamError::NoSuchStream {
                id: stream.unwrap_or_default().to_string(),
            },
            429 => DaydreamError::RateLimited { retry_after },
            500..=599 => DaydreamError::Server { status, message },
            _ => DaydreamError::Rejected { status, message },
        })
    }
}

fn json_body(request: RequestBuilder, body: &Value) -> RequestBuilder {
    request
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

/// `{"pipeline":"streamdiffusion","params":{"model_id":..,..}}`.
pub fn request_body(model: &str, params: &Map<String, Value>) -> Value {
    let mut all = Map::new();
    all.insert(param::MODEL_ID.into(), json!(model));
    for (k, v) in params {
        if k != param::MODEL_ID {
            all.insert(k.clone(), v.clone());
        }
    }
    json!({ "pipeline": PIPELINE, "params": all })
}

fn parse<T: for<'de> Deserialize<'de>>(body: &str, what: &str) -> Result<T, DaydreamError> {
    serde_json::from_str(body).map_err(|e| DaydreamError::BadAnswer {
        what: format!("{what} is not what the API documents ({e})"),
    })
}

/// Daydream's `error` field, or the body's start when it is not the documented shape.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        let error = v.get("error")?;
        Some(match error {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| error.to_string(), str::to_string),
            other => other.to_string(),
        })
    });
    from_json.unwrap_or_else(|| {
        body.chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string()
    })
}

fn retry_after(response: &Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    let secs: f64 = value.trim().parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// Redirects within the API's origin are followed (at most 5); one to another origin is an
/// error. reqwest would follow it without the key, and the other origin's answer would be
/// taken as Daydream's (a PATCH counted as applied that never reached Daydream).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let cross = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() != attempt.url().origin());
        if cross {
            let to = Redacted::url(attempt.url()).to_string();
            attempt.error(format!(
                "it redirects an authenticated call to another origin ({to}); Lucid does not follow it"
            ))
        } else if attempt.previous().len() > 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// Why an answer's body was not read.
enum Capped {
    /// The connection failed while reading (a network error, worth a retry).
    Read(String),
    /// The body is over [`MAX_BODY_BYTES`] (a protocol error).
    TooLarge,
}

fn read_capped(response: Response) -> Result<String, Capped> {
    use std::io::Read;
    let mut body = Vec::new();
    response
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| Capped::Read(e.to_string()))?;
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err(Capped::TooLarge);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

fn innermost(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}

/// A stream id in a path segment.
fn urlencode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_names_the_pipeline_and_the_model() {
        let mut params = Map::new();
        params.insert("prompt".into(), json!("a forest"));
        params.insert("model_id".into(), json!("other/ignored"));
        assert_eq!(
            request_body("stabilityai/sd-turbo", &params),
            json!({"pipeline":"streamdiffusion","params":{"model_id":"stabilityai/sd-turbo","prompt":"a forest"}})
        );
    }

    #[test]
    fn status_reads_the_documented_fields() {
        let v = json!({"success":true,"data":{
            "inference_status":{"output_fps":14.5,"last_output_time":1732550000,"last_error":""},
            "gateway_status":{"whep_url":"https://gw.example/whep/abc"}}});
        let s = StreamStatus::from_json(&v);
        assert_eq!(s.output_fps, Some(14.5));
        assert!(s.ready());
        assert_eq!(s.last_error, None);
        assert_eq!(s.whep_url.as_deref(), Some("https://gw.example/whep/abc"));
        let warming = StreamStatus::from_json(
            &json!({"data":{"inference_status":{"output_fps":0,"last_output_time":null,"last_error":"CUDA OOM"}}}),
        );
        assert!(!warming.ready());
        assert_eq!(warming.last_error.as_deref(), Some("CUDA OOM"));
    }

    #[test]
    fn error_messages_come_from_the_documented_shape() {
        assert_eq!(
            error_message(
                r#"{"success":false,"error":"prompt too long","code":"STREAMS/INVALID","status":400}"#
            ),
            "prompt too long"
        );
        assert_eq!(
            error_message("<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }
}
