//! The frame loop's side of the HTTP API: the latest status goes to the server once it is
//! made, and the server's counters into `control.http_*`. OSC over HTTP is applied by the
//! control plugin, like `--osc`'s.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bevy::prelude::*;

use super::RemoteLink;
use crate::show::state::ControlReport;
use crate::status::{LatestStatus, StatusSystems};

/// Feeds the HTTP server (started before the app, so a port in use is a usage error).
pub struct RemotePlugin(pub RemoteLink);

#[derive(Resource)]
struct Remote(RemoteLink);

impl Plugin for RemotePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(Remote(self.0.clone()))
            .init_resource::<ControlReport>()
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
