//! Steering a Daydream stream, as pure logic (no HTTP, no Bevy): the values the user wants,
//! what was sent and what Daydream took, one PATCH at a time, debounced (the latest value
//! wins, at most one PATCH per [`MIN_INTERVAL`]), backing off on 429 and on server or
//! network failures, and keeping the last applied value of a parameter Daydream rejected.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::DaydreamError;
use super::api::param;

/// At most one PATCH per this long (about 10 a second; Daydream's OBS plugin debounces by
/// 100 ms too).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// First wait after a 429 without Retry-After, or after a server or network failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between tries.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// True for the parameters whose change reloads Daydream's pipeline (the output warms up
/// again): the model, ControlNets (anything but a conditioning scale), `skip_diffusion`.
pub fn reloads_pipeline(name: &str) -> bool {
    matches!(
        name,
        param::MODEL_ID | param::CONTROLNETS | param::SKIP_DIFFUSION
    )
}

/// Where one parameter's latest change stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeState {
    /// Waiting for the debounce or a backoff, or on its way.
    Sending,
    /// Daydream took it.
    Applied,
    /// Daydream refused it (its message); the previous value stays.
    Failed(String),
    /// Not sent yet because Daydream is not reachable or asked to slow down: retried.
    Retrying(String),
}

impl std::fmt::Display for ChangeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeState::Sending => f.write_str("sending"),
            ChangeState::Applied => f.write_str("applied"),
            ChangeState::Failed(why) => write!(f, "failed: {why}"),
            ChangeState::Retrying(why) => write!(f, "retrying: {why}"),
        }
    }
}

/// One PATCH to send: the parameters and the values.
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// Changed parameters (the body adds `model_id`).
    pub params: Map<String, Value>,
    /// The model to name in the body.
    pub model: String,
}

/// The steering state of one stream.
#[derive(Debug)]
pub struct Steering {
    model: String,
    /// What Daydream last accepted, per parameter.
    applied: BTreeMap<String, Value>,
    /// What the user wants and has not been sent yet.
    pending: Map<String, Value>,
    /// What is on its way.
    in_flight: Option<Map<String, Value>>,
    states: BTreeMap<String, ChangeState>,
    /// No PATCH before this.
    next_send: Instant,
    backoff: Duration,
    /// PATCHes sent, for the status.
    pub sent: u64,
}

impl Steering {
    /// Steering a stream that runs `model`, with the parameters it is known to have.
    pub fn new(
        model: impl Into<String>,
        known: Option<&Map<String, Value>>,
        now: Instant,
    ) -> Steering {
        let applied = known
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        Steering {
            model: model.into(),
            applied,
            pending: Map::new(),
            in_flight: None,
            states: BTreeMap::new(),
            next_send: now,
            backoff: FIRST_BACKOFF,
            sent: 0,
        }
    }

    /// The model named in every PATCH.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The user wants `name` = `value`. A newer value replaces one not sent yet.
    pub fn set(&mut self, name: &str, value: Value) {
        self.pending.insert(name.to_string(), value);
        self.states.insert(name.to_string(), ChangeState::Sending);
    }

    /// The value to show for `name`: the wanted one while it is on its way, else the last
    /// one Daydream took.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.pending
            .get(name)
            .or_else(|| self.in_flight.as_ref().and_then(|f| f.get(name)))
            .or_else(|| self.applied.get(name))
    }

    /// Every parameter's value to show (see [`Self::value`]).
    pub fn values(&self) -> BTreeMap<String, Value> {
        let names = self
            .applied
            .keys()
            .chain(self.pending.keys())
            .chain(self.in_flight.iter().flat_map(|f| f.keys()));
        names
            .filter_map(|n| Some((n.clone(), self.value(n)?.clone())))
            .collect()
    }

    /// Where `name`'s latest change stands.
    pub fn state(&self, name: &str) -> Option<&ChangeState> {
        self.states.get(name)
    }

    /// Every parameter's state, by name.
    pub fn states(&self) -> &BTreeMap<String, ChangeState> {
        &self.states
    }

    /// True when nothing waits to be sent or answered.
    pub fn idle(&self) -> bool {
        self.pending.is_empty() && self.in_flight.is_none()
    }

    /// When [`Self::due`] can next return a PATCH (for sleeping until then).
    pub fn next_send(&self) -> Option<Instant> {
        (!self.pending.is_empty() && self.in_flight.is_none()).then_some(self.next_send)
    }

    /// The PATCH to send now, if one is due: everything pending, in one request.
    pub fn due(&mut self, now: Instant) -> Option<Patch> {
        if self.in_flight.is_some() || self.pending.is_empty() || now < self.next_send {
            return None;
        }
        let params = std::mem::take(&mut self.pending);
        self.in_flight = Some(params.clone());
        self.next_send = now + MIN_INTERVAL;
        self.sent += 1;
        if let Some(model) = params.get(param::MODEL_ID).and_then(Value::as_str) {
            // The body names the new model.
            return Some(Patch {
                model: model.to_string(),
                params,
            });
        }
        Some(Patch {
            params,
            model: self.model.clone(),
        })
    }

    /// Daydream's answer to the PATCH in flight.
    pub fn answered(&mut self, now: Instant, result: Result<(), &DaydreamError>) {
        let Some(sent) = self.in_flight.take() else {
            return;
        };
        match result {
            Ok(()) => {
                self.backoff = FIRST_BACKOFF;
                for (name, value) in sent {
                    if name == param::MODEL_ID
                        && let Some(model) = value.as_str()
                    {
                        self.model = model.to_string();
                    }
                    if !self.pending.contains_key(&name) {
                        self.states.insert(name.clone(), ChangeState::Applied);
                    }
                    self.applied.insert(name, value);
                }
            }
            Err(e) if e.is_transient() => {
                let wait = match e {
                    DaydreamError::RateLimited {
                        retry_after: Some(after),
                    } => (*after).min(MAX_BACKOFF),
                    _ => self.backoff,
                };
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.next_send = now + wait;
                let why = e.to_string();
                // Sent again with the next PATCH, unless the user moved on meanwhile.
                for (name, value) in sent {
                    if !self.pending.contains_key(&name) {
                        self.states
                            .insert(name.clone(), ChangeState::Retrying(why.clone()));
                        self.pending.insert(name, value);
                    }
                }
            }
            Err(e) => {
                let why = match e {
                    DaydreamError::Rejected { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                for name in sent.keys() {
                    if !self.pending.contains_key(name) {
                        self.states
                            .insert(name.clone(), ChangeState::Failed(why.clone()));
                    }
                }
            }
        }
    }
}

/// A prompt morph: `[[from, 1 - t], [to, t]]` with t going from 0 to 1 over `duration`.
#[derive(Debug, Clone)]
pub struct PromptMorph {
    from: String,
    to: String,
    start: Instant,
    duration: Duration,
    /// The last weight sent, so each step is sent once and weights never go back.
    last: Option<f64>,
}

impl PromptMorph {
    /// A morph from `from` to `to` starting `now`.
    pub fn new(
        from: impl Into<String>,
        to: impl Into<String>,
        now: Instant,
        duration: Duration,
    ) -> PromptMorph {
        PromptMorph {
            from: from.into(),
            to: to.into(),
            start: now,
            duration,
            last: None,
        }
    }

    /// The weight of `to` at `now`, 0..=1.
    pub fn weight(&self, now: Instant) -> f64 {
        if self.duration.is_zero() {
            return 1.0;
        }
        (now.saturating_duration_since(self.start).as_secs_f64() / self.duration.as_secs_f64())
            .clamp(0.0, 1.0)
    }

    /// The prompt value to send now if it moved since the last one (rounded to 1/1000, so
    /// a value is never sent twice), and whether the morph is done.
    pub fn step(&mut self, now: Instant) -> (Option<Value>, bool) {
        let t = (self.weight(now) * 1000.0).round() / 1000.0;
        let done = t >= 1.0;
        if self.last.is_some_and(|l| t <= l) {
            return (None, done);
        }
        self.last = Some(t);
        let value = serde_json::json!([[self.from, 1.0 - t], [self.to, t]]);
        (Some(value), done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_burst_of_moves_becomes_one_patch_with_the_latest_value() {
        let now = t0();
        let mut s = Steering::new("stabilityai/sd-turbo", None, now);
        for i in 0..50 {
            s.set("guidance_scale", json!(1.0 + i as f64 / 10.0));
        }
        let p = s.due(now).expect("due at once");
        assert_eq!(p.params.get("guidance_scale"), Some(&json!(5.9)));
        assert_eq!(p.model, "stabilityai/sd-turbo");
        // Nothing else while it is in flight, nor within the interval after.
        s.set("guidance_scale", json!(2.0));
        assert!(s.due(now).is_none());
        s.answered(now, Ok(()));
        assert!(s.due(now + MIN_INTERVAL / 2).is_none());
        let p = s.due(now + MIN_INTERVAL).expect("the next move");
        assert_eq!(p.params.get("guidance_scale"), Some(&json!(2.0)));
        assert_eq!(s.sent, 2);
    }

    #[test]
    fn rate_limits_back_off_and_resend() {
        let now = t0();
        let mut s = Steering::new("m", None, now);
        s.set("prompt", json!("a"));
        s.due(now).unwrap();
        s.answered(
            now,
            Err(&DaydreamError::RateLimited {
                retry_after: Some(Duration::from_secs(2)),
            }),
        );
        assert!(matches!(s.state("prompt"), Some(ChangeState::Retrying(_))));
        assert!(s.due(now + Duration::from_millis(1900)).is_none());
        let p = s.due(now + Duration::from_secs(2)).expect("resent");
        assert_eq!(p.params.get("prompt"), Some(&json!("a")));
        s.answered(now, Ok(()));
        assert_eq!(s.state("prompt"), Some(&ChangeState::Applied));
    }

    #[test]
    fn a_rejected_value_keeps_the_previous_one() {
        let now = t0();
        let mut known = Map::new();
        known.insert("num_inference_steps".into(), json!(50));
        let mut s = Steering::new("m", Some(&known), now);
        s.set("num_inference_steps", json!(500));
        assert_eq!(s.value("num_inference_steps"), Some(&json!(500)));
        s.due(now).unwrap();
        s.answered(
            now,
            Err(&DaydreamError::Rejected {
                status: 400,
                message: "steps must be 1-100".into(),
            }),
        );
        assert_eq!(s.value("num_inference_steps"), Some(&json!(50)));
        assert_eq!(s.values().get("num_inference_steps"), Some(&json!(50)));
        assert_eq!(
            s.state("num_inference_steps"),
            Some(&ChangeState::Failed("steps must be 1-100".into()))
        );
    }

    #[test]
    fn a_model_change_names_the_new_model_and_is_marked() {
        let now = t0();
        let mut s = Steering::new("stabilityai/sd-turbo", None, now);
        s.set("model_id", json!("stabilityai/sdxl-turbo"));
        let p = s.due(now).unwrap();
        assert_eq!(p.model, "stabilityai/sdxl-turbo");
        s.answered(now, Ok(()));
        assert_eq!(s.model(), "stabilityai/sdxl-turbo");
        assert!(reloads_pipeline("model_id") && reloads_pipeline("controlnets"));
        assert!(!reloads_pipeline("prompt"));
    }

    #[test]
    fn a_morph_sends_monotone_weights_ending_at_one() {
        let now = t0();
        let mut m = PromptMorph::new("a", "b", now, Duration::from_secs(2));
        let mut weights = Vec::new();
        for ms in (0..=2100).step_by(37) {
            let (v, done) = m.step(now + Duration::from_millis(ms));
            if let Some(v) = v {
                weights.push(v[1][1].as_f64().unwrap());
                assert_eq!(v[0][0], "a");
            }
            if done {
                break;
            }
        }
        assert_eq!(weights.first(), Some(&0.0));
        assert_eq!(weights.last(), Some(&1.0));
        assert!(weights.windows(2).all(|w| w[1] > w[0]), "{weights:?}");
    }
}
