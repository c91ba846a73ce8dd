//! A fake Daydream API on 127.0.0.1 (Daydream's service cannot be reached from here). It
//! speaks the documented shapes (`../shared/reference/streams.md`): `POST /v1/streams`,
//! `GET /v1/streams/{id}`, `GET /v1/streams/{id}/status`, `PATCH /v1/streams/{id}`,
//! `Authorization: Bearer`, and errors as `{"success":false,"error","code","status"}`. It
//! records every request, and its answers to PATCHes can be scripted (429, 400, 500).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// What the fake answers.
pub struct Script {
    /// The one key it accepts.
    pub key: String,
    /// The streams it knows, by id (a created one is added).
    pub streams: Vec<Value>,
    /// The id a created stream gets.
    pub create_id: String,
    /// The status's `gateway_status.whep_url`.
    pub whep_url: Option<String>,
    /// The status's `inference_status.output_fps`.
    pub output_fps: f64,
    /// Scripted PATCH answers (status, body, Retry-After), used up in order; then 200.
    pub patch_answers: VecDeque<(u16, Value, Option<u32>)>,
    /// Scripted status-endpoint statuses, used up in order (200 answers normally); then 200.
    pub status_answers: VecDeque<u16>,
    /// Where PATCHes are redirected (307 with this Location), when set.
    pub patch_redirect: Option<String>,
}

/// The fake API server.
pub struct FakeDaydream {
    pub port: u16,
    pub script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

pub const KEY: &str = "sk_test_9f8e7d6c5b4a";

impl FakeDaydream {
    pub fn start(whep_url: Option<String>) -> FakeDaydream {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = server.server_addr().to_ip().expect("ip").port();
        let script = Arc::new(Mutex::new(Script {
            key: KEY.into(),
            streams: vec![json!({
                "id": "str_existing",
                "stream_key": "stk_x",
                "whip_url": format!("http://127.0.0.1:{port}/whip/str_existing"),
                "output_playback_id": "pb_existing",
                "pipeline": "streamdiffusion",
                "params": {"model_id": "stabilityai/sdxl-turbo", "prompt": "a quiet lake"},
                "created_at": "2026-11-25T00:00:00Z",
                "name": "show"
            })],
            create_id: "str_created".into(),
            whep_url,
            output_fps: 0.0,
            patch_answers: VecDeque::new(),
            status_answers: VecDeque::new(),
            patch_redirect: None,
        }));
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, r, st) = (script.clone(), requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while !st.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut body = String::new();
                let _ = request.as_reader().read_to_string(&mut body);
                let recorded = Recorded {
                    method: request.method().to_string(),
                    path: request.url().to_string(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|h| {
                            (
                                h.field.as_str().as_str().to_ascii_lowercase(),
                                h.value.as_str().to_string(),
                            )
                        })
                        .collect(),
                    body,
                    at: Instant::now(),
                };
                let (status, answer, retry_after) = answer(&s, &recorded);
                r.lock().unwrap().push(recorded);
                let mut response = tiny_http::Response::from_string(answer.to_string())
                    .with_status_code(status)
                    .with_header(
                        tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                    );
                if status == 307
                    && let Some(to) = s.lock().unwrap().patch_redirect.clone()
                {
                    response = response
                        .with_header(tiny_http::Header::from_bytes("Location", to).unwrap());
                }
                if let Some(after) = retry_after {
                    response = response.with_header(
                        tiny_http::Header::from_bytes("Retry-After", after.to_string()).unwrap(),
                    );
                }
                let _ = request.respond(response);
            }
        });
        FakeDaydream {
            port,
            script,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests with this method, in order.
    pub fn with_method(&self, method: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }
}

impl Drop for FakeDaydream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn error(status: u16, message: &str, code: &str) -> (u16, Value, Option<u32>) {
    (
        status,
        json!({"success": false, "error": message, "code": code, "status": status, "requestId": "req_1"}),
        None,
    )
}

fn answer(script: &Mutex<Script>, r: &Recorded) -> (u16, Value, Option<u32>) {
    let mut s = script.lock().unwrap();
    if r.header("authorization") != Some(&format!("Bearer {}", s.key)) {
        return error(401, "Unauthorized", "AUTH/UNAUTHORIZED");
    }
    let path = r.path.split('?').next().unwrap_or_default().to_string();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (r.method.as_str(), parts.as_slice()) {
        ("POST", ["v1", "streams"]) => {
            let body = r.json();
            if body["pipeline"] != "streamdiffusion" || !body["params"]["model_id"].is_string() {
                return error(
                    400,
                    "pipeline and params.model_id are required",
                    "STREAMS/INVALID",
                );
            }
            let id = s.create_id.clone();
            let stream = json!({
                "id": id,
                "stream_key": "stk_new",
                "whip_url": format!("https://ai.livepeer.example/live/video-to-video/stk_new/whip"),
                "output_playback_id": "pb_created",
                "output_stream_url": "",
                "pipeline": "streamdiffusion",
                "params": body["params"],
                "created_at": "2026-11-25T00:00:00Z",
                "name": "",
                "gateway_host": "gw.example"
            });
            s.streams.push(stream.clone());
            (201, stream, None)
        }
        ("GET", ["v1", "streams", id]) => match s.streams.iter().find(|x| x["id"] == *id) {
            Some(stream) => (200, stream.clone(), None),
            None => error(404, "Stream not found", "STREAMS/NOT_FOUND"),
        },
        ("GET", ["v1", "streams", id, "status"]) => {
            if !s.streams.iter().any(|x| x["id"] == *id) {
                return error(404, "Stream not found", "STREAMS/NOT_FOUND");
            }
            match s.status_answers.pop_front() {
                Some(200) | None => {}
                Some(status) => return error(status, "upstream unavailable", "INTERNAL"),
            }
            let ready = s.output_fps > 0.0;
            (
                200,
                json!({"success": true, "data": {
                    "inference_status": {
                        "output_fps": s.output_fps,
                        "last_output_time": if ready { json!(1764028800) } else { Value::Null },
                        "last_error": ""
                    },
                    "gateway_status": {"whep_url": s.whep_url}
                }}),
                None,
            )
        }
        ("PATCH", ["v1", "streams", id]) => {
            if !s.streams.iter().any(|x| x["id"] == *id) {
                return error(404, "Stream not found", "STREAMS/NOT_FOUND");
            }
            if s.patch_redirect.is_some() {
                return (307, json!({}), None);
            }
            if let Some(scripted) = s.patch_answers.pop_front() {
                return scripted;
            }
            (200, json!({"success": true, "id": id}), None)
        }
        _ => error(404, "Not found", "NOT_FOUND"),
    }
}
