//! The frame loop's side of the HTTP API: the latest status goes to the server once it is
//! made, and the server's counters into `control.http_*`; a snapshot asked for is read back
//! from the output canvas and encoded on a thread of its own. OSC over HTTP is applied by
//! the control plugin, like `--osc`'s.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};

use super::RemoteLink;
use super::server::SnapshotRequest;
use crate::compositor::layers::Fader;
use crate::effects::chain::EffectChain;
use crate::effects::{EffectCatalog, MasterLevel};
use crate::show::state::{ControlReport, Cues};
use crate::sound::ShowSound;
use crate::status::{LatestStatus, StatusSystems};
use crate::video::Freeze;
use crate::video::OutputCanvas;

/// Feeds the HTTP server (started before the app, so a port in use is a usage error).
pub struct RemotePlugin(pub RemoteLink);

#[derive(Resource)]
struct Remote(RemoteLink);

impl Plugin for RemotePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Remote(self.0.clone()))
            .init_resource::<ControlReport>()
            .init_resource::<PendingSnapshots>()
            .add_systems(Update, (take_snapshots, publish_show))
            .add_systems(Last, publish.after(StatusSystems));
    }
}

fn publish(remote: Res<Remote>, latest: Res<LatestStatus>, mut report: ResMut<ControlReport>) {
    let c = &remote.0.counters;
    report.http_requests = c.requests.load(Ordering::Relaxed);
    report.http_unauthorized = c.unauthorized.load(Ordering::Relaxed);
    report.http_busy = c.busy.load(Ordering::Relaxed);
    if latest.is_changed()
        && let Some(status) = &latest.0
    {
        remote.0.status.send_replace(Some(Arc::new(status.clone())));
    }
}

/// The show's values for the web remote, at most four times a second, when they changed.
#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn publish_show(
    remote: Res<Remote>,
    chain: Res<EffectChain>,
    catalog: Res<EffectCatalog>,
    master: Res<MasterLevel>,
    freeze: Res<Freeze>,
    sound: Res<ShowSound>,
    extra: (Option<Res<Fader>>, Option<Res<Cues>>),
    mut last: Local<Option<(std::time::Instant, serde_json::Value)>>,
) {
    let now = std::time::Instant::now();
    if last
        .as_ref()
        .is_some_and(|(t, _)| now - *t < std::time::Duration::from_millis(250))
    {
        return;
    }
    let (fader, cues) = extra;
    let values =
        crate::control::plugin::osc_values(&chain, &catalog, master.level, freeze.0, &sound);
    let effects: Vec<serde_json::Value> = chain
        .effects
        .iter()
        .map(|e| {
            let params: Vec<String> = catalog
                .get(&e.effect)
                .map(|d| d.params.iter().map(|p| p.name.clone()).collect())
                .unwrap_or_default();
            serde_json::json!({"effect": e.effect, "params": params})
        })
        .collect();
    let show = serde_json::json!({
        "values": values,
        "effects": effects,
        "crossfader": fader.map(|f| f.0.target),
        "cues": cues.as_ref().map(|c| c.0.cues.iter().map(|q| q.name.clone()).collect::<Vec<_>>()).unwrap_or_default(),
        "cue": cues.and_then(|c| c.0.current),
    });
    if last.as_ref().is_some_and(|(_, v)| *v == show) {
        *last = Some((now, show));
        return;
    }
    remote.0.show.send_replace(Some(Arc::new(show.clone())));
    *last = Some((now, show));
}

/// Snapshots being read back, by the read-back entity: the canvas size, and the request.
#[derive(Resource, Default)]
struct PendingSnapshots(HashMap<Entity, (UVec2, SnapshotRequest)>);

/// Starts a read-back of the canvas for each snapshot asked for.
fn take_snapshots(
    mut commands: Commands,
    remote: Res<Remote>,
    canvas: Option<Res<OutputCanvas>>,
    mut pending: ResMut<PendingSnapshots>,
) {
    for request in remote.0.snapshots.try_iter() {
        let Some(canvas) = canvas.as_ref() else {
            let _ = request
                .reply
                .send(Err("no picture yet: the show is starting".into()));
            continue;
        };
        let entity = commands
            .spawn(Readback::texture(canvas.image.clone()))
            .observe(deliver_snapshot)
            .id();
        pending.0.insert(entity, (canvas.size, request));
    }
}

/// The canvas came back: unpadded, scaled and encoded on a thread, then answered.
fn deliver_snapshot(
    done: On<ReadbackComplete>,
    mut pending: ResMut<PendingSnapshots>,
    mut commands: Commands,
) {
    // A read-back repeats every frame until its entity goes: the first one answers.
    let Some((size, request)) = pending.0.remove(&done.entity) else {
        return;
    };
    commands.entity(done.entity).despawn();
    let rgba: Vec<u8> = crate::output::readback_rows(&done.data, size.x as usize * 4)
        .take(size.y as usize)
        .flatten()
        .copied()
        .collect();
    std::thread::spawn(move || {
        let _ = request.reply.send(encode(rgba, size, request.width));
    });
}

/// Scales down to `width` (aspect kept, even sides for 4:2:0) when asked, then JPEG.
fn encode(rgba: Vec<u8>, size: UVec2, width: Option<u32>) -> Result<Vec<u8>, String> {
    let full = image::RgbaImage::from_raw(size.x, size.y, rgba).ok_or("a short read-back")?;
    let picture = match width.filter(|w| *w < size.x) {
        Some(w) => {
            let h = ((u64::from(size.y) * u64::from(w)) / u64::from(size.x)).max(2) as u32;
            image::imageops::resize(&full, w & !1, h & !1, image::imageops::FilterType::Triangle)
        }
        None => full,
    };
    crate::output::images::jpeg_bytes(picture.as_raw(), picture.width(), picture.height())
}
