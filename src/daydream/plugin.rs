//! The Bevy side of Daydream control: starts the worker threads once the app runs, keeps
//! the latest [`Snapshot`] in [`DaydreamState`] (the slate, the overlay's panel, the status
//! line and `--stats-json` read it), and hands [`SteerCommand`]s from the app to the worker.

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender};

use super::Attached;
pub use super::worker::SteerCommand;
use super::worker::{self, Snapshot};
use crate::lifecycle::Lifecycle;
use crate::show::state::Cues;

/// The attached stream as the app sees it.
#[derive(Resource, Debug, Default, Clone)]
pub struct DaydreamState {
    /// The stream's id.
    pub stream_id: String,
    /// Where a broadcaster sends the input.
    pub whip_url: Option<String>,
    /// The worker's latest snapshot.
    pub latest: Option<Snapshot>,
}

/// Sends steering commands to the worker. A full queue (256 commands) drops the command:
/// the app sends at most a few a frame.
#[derive(Resource, Clone)]
pub struct Steer(Sender<SteerCommand>);

impl Steer {
    /// Asks for a change.
    pub fn send(&self, command: SteerCommand) {
        let _ = self.0.try_send(command);
    }
}

#[derive(Resource)]
struct Snapshots(Receiver<Snapshot>);

/// The Daydream part of the status line and of `--stats-json`.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct DaydreamReport {
    /// The stream's id.
    pub stream: String,
    /// The model PATCHes name.
    pub model: String,
    /// Output is flowing (Daydream's status).
    pub output_ready: bool,
    /// Daydream's output frame rate.
    pub output_fps: Option<f64>,
    /// Daydream's last inference error.
    pub last_error: Option<String>,
    /// Why the status cannot be read, while it cannot.
    pub status_error: Option<String>,
    /// PATCHes sent.
    pub patches_sent: u64,
    /// Each parameter's latest change: "sending", "applied", "failed: ..", "retrying: ..".
    pub changes: std::collections::BTreeMap<String, String>,
    /// A running prompt morph's progress, 0..1.
    pub morph: Option<f64>,
}

impl DaydreamState {
    /// The report, once the worker has said anything.
    pub fn report(&self) -> Option<DaydreamReport> {
        let s = self.latest.as_ref()?;
        Some(DaydreamReport {
            stream: self.stream_id.clone(),
            model: s.model.clone(),
            output_ready: s.status.ready(),
            output_fps: s.status.output_fps,
            last_error: s.status.last_error.clone(),
            status_error: s.status_error.clone(),
            patches_sent: s.patches_sent,
            changes: s
                .states
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
            morph: s.morph,
        })
    }
}

/// The app's ends of the worker's channels, and what is known of the stream up front.
#[derive(Clone)]
pub struct DaydreamLink {
    state: DaydreamState,
    commands: Sender<SteerCommand>,
    snapshots: Receiver<Snapshot>,
}

impl DaydreamLink {
    /// Starts the worker threads for `attached` (they stop with `lifecycle`).
    pub fn start(attached: Attached, lifecycle: &Lifecycle) -> DaydreamLink {
        let state = DaydreamState {
            stream_id: attached.stream.id.clone(),
            whip_url: attached.stream.whip_url.clone(),
            latest: None,
        };
        let (commands, snapshots) = worker::spawn(attached, lifecycle);
        DaydreamLink {
            state,
            commands,
            snapshots,
        }
    }
}

/// Steers the stream Lucid attached to.
pub struct DaydreamPlugin(pub DaydreamLink);

impl Plugin for DaydreamPlugin {
    fn build(&self, app: &mut App) {
        let link = self.0.clone();
        app.insert_resource(link.state)
            .insert_resource(Steer(link.commands))
            .insert_resource(Snapshots(link.snapshots))
            .add_systems(PreUpdate, receive_snapshots)
            // After Update, where `--state` restores the show.
            .add_systems(PostUpdate, resume_cue);
    }
}

/// Once, at start: a cue already current (restored by `--state`) is sent to the stream, so
/// a restart steers it back to where the show was.
fn resume_cue(mut done: Local<bool>, cues: Option<ResMut<Cues>>, steer: Res<Steer>) {
    if std::mem::replace(&mut *done, true) {
        return;
    }
    let Some(mut cues) = cues else { return };
    if let Some(i) = cues.0.current {
        for command in cues.0.go(i) {
            steer.send(command);
        }
    }
}

fn receive_snapshots(snapshots: Res<Snapshots>, mut state: ResMut<DaydreamState>) {
    if let Some(latest) = snapshots.0.try_iter().last() {
        state.latest = Some(latest);
    }
}
