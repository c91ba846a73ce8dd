//! The threads that talk to Daydream while the show plays: `lucid-daydream` owns the
//! steering ([`super::steer::Steering`]) and sends its PATCHes; `lucid-daydream-status`
//! polls the status endpoint about once a second. Neither ever blocks the video: the app
//! sends [`SteerCommand`]s and reads [`Snapshot`]s over bounded channels.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use serde_json::Value;
use tracing::{info, warn};

use super::api::{DaydreamApi, StreamStatus, param};
use super::steer::{ChangeState, PromptMorph, Steering, reloads_pipeline};
use super::{Attached, DaydreamError};
use crate::lifecycle::Lifecycle;

/// How often the status is asked for.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// The steering loop's tick: debounce and morph steps are finer than the PATCH rate.
const TICK: Duration = Duration::from_millis(20);

/// What the app asks of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SteerCommand {
    /// Set a parameter (wire name) to a value; the latest value wins.
    Set {
        /// The parameter.
        name: String,
        /// Its new value.
        value: Value,
    },
    /// Morph the prompt from the current one to `to` over `seconds`.
    Morph {
        /// The new prompt.
        to: String,
        /// How long the transition takes.
        seconds: f64,
    },
}

/// The stream and the steering as the app shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The stream's id.
    pub stream_id: String,
    /// The model PATCHes name.
    pub model: String,
    /// Daydream's latest status.
    pub status: StreamStatus,
    /// Why the latest status poll failed, while it does.
    pub status_error: Option<String>,
    /// Each parameter's value as the UI should show it.
    pub values: BTreeMap<String, Value>,
    /// Each parameter's latest change.
    pub states: BTreeMap<String, ChangeState>,
    /// PATCHes sent.
    pub patches_sent: u64,
    /// The running morph's progress, 0..1.
    pub morph: Option<f64>,
}

/// Starts the threads for an attached stream. Returns the command sender and the snapshot
/// receiver; both threads end with the stop flag.
pub fn spawn(
    attached: Attached,
    lifecycle: &Lifecycle,
) -> (Sender<SteerCommand>, Receiver<Snapshot>) {
    let (commands_tx, commands_rx) = bounded::<SteerCommand>(256);
    let (snapshots_tx, snapshots_rx) = bounded::<Snapshot>(4);
    let (status_tx, status_rx) = bounded::<Result<StreamStatus, String>>(2);
    let id = attached.stream.id.clone();
    let poller = attached.api.clone();
    let stop = lifecycle.clone();
    lifecycle.spawn("lucid-daydream-status", move || {
        poll_status(&poller, &id, &status_tx, &stop)
    });
    let l = lifecycle.clone();
    lifecycle.spawn("lucid-daydream", move || {
        steer_loop(attached, &commands_rx, &status_rx, &snapshots_tx, &l)
    });
    (commands_tx, snapshots_rx)
}

fn poll_status(
    api: &DaydreamApi,
    id: &str,
    out: &Sender<Result<StreamStatus, String>>,
    lifecycle: &Lifecycle,
) {
    let mut was_ready = None;
    while !lifecycle.stopping() {
        let started = Instant::now();
        let answer = api.status(id).map_err(|e| e.to_string());
        if let Ok(status) = &answer {
            let ready = status.ready();
            if was_ready != Some(ready) {
                if ready {
                    info!("daydream: output is live");
                } else if was_ready.is_some() {
                    info!("daydream: output is warming up");
                }
                was_ready = Some(ready);
            }
        }
        if out.send_timeout(answer, STATUS_EVERY).is_err() {
            return;
        }
        let next = started + STATUS_EVERY;
        while Instant::now() < next && !lifecycle.stopping() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn steer_loop(
    attached: Attached,
    commands: &Receiver<SteerCommand>,
    statuses: &Receiver<Result<StreamStatus, String>>,
    snapshots: &Sender<Snapshot>,
    lifecycle: &Lifecycle,
) {
    let Attached {
        api,
        stream,
        model,
        initial,
        status,
        ..
    } = attached;
    let mut steering = Steering::new(model, stream.params.as_ref(), Instant::now());
    for (name, value) in initial {
        steering.set(&name, value);
    }
    let mut snapshot = Snapshot {
        stream_id: stream.id.clone(),
        status,
        ..Snapshot::default()
    };
    let mut morph: Option<PromptMorph> = None;
    let mut published: Option<Snapshot> = None;
    while !lifecycle.stopping() {
        let now = Instant::now();
        for command in commands.try_iter() {
            match command {
                SteerCommand::Set { name, value } => {
                    if name == param::PROMPT {
                        morph = None;
                    }
                    if reloads_pipeline(&name) {
                        info!(
                            "daydream: {name} changes reload the pipeline; the output warms up again"
                        );
                    }
                    steering.set(&name, value);
                }
                SteerCommand::Morph { to, seconds } => {
                    let from = prompt_text(steering.value(param::PROMPT));
                    let duration =
                        Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or_default();
                    morph = Some(PromptMorph::new(from, to, now, duration));
                }
            }
        }
        if let Some(m) = morph.as_mut() {
            let (value, done) = m.step(now);
            snapshot.morph = Some(m.weight(now));
            if let Some(value) = value {
                steering.set(param::PROMPT, value);
            }
            if done {
                morph = None;
            }
        } else {
            snapshot.morph = None;
        }
        if let Some(patch) = steering.due(now) {
            let result = api.update(&stream.id, &patch.model, &patch.params);
            if let Err(e) = &result {
                log_failure(e);
            }
            steering.answered(Instant::now(), result.as_ref().map(|_| ()));
        }
        for answer in statuses.try_iter() {
            match answer {
                Ok(status) => {
                    snapshot.status = status;
                    snapshot.status_error = None;
                }
                Err(e) => snapshot.status_error = Some(e),
            }
        }
        snapshot.model = steering.model().to_string();
        snapshot.patches_sent = steering.sent;
        snapshot.states = steering.states().clone();
        snapshot.values = steering.values();
        if published.as_ref() != Some(&snapshot) {
            match snapshots.try_send(snapshot.clone()) {
                Ok(()) => published = Some(snapshot.clone()),
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        std::thread::sleep(TICK);
    }
}

fn log_failure(e: &DaydreamError) {
    match e {
        DaydreamError::Rejected { message, .. } => {
            warn!("daydream refused a change: {message}; the previous value stays")
        }
        e if e.is_transient() => warn!("daydream: {e}; retrying"),
        e => warn!("daydream: {e}"),
    }
}

/// A prompt value as text: the text itself, or the heaviest entry of a weighted list.
fn prompt_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|i| Some((i.get(0)?.as_str()?, i.get(1)?.as_f64()?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(t, _)| t.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_weighted_prompt_reads_as_its_heaviest_text() {
        assert_eq!(prompt_text(Some(&json!("forest"))), "forest");
        assert_eq!(prompt_text(Some(&json!([["a", 0.25], ["b", 0.75]]))), "b");
        assert_eq!(prompt_text(None), "");
    }
}
