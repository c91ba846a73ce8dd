//! The headless schedule for `--no-preview`: no window, no event loop, and an app update
//! exactly when the next video frame is due instead of a fixed-rate busy loop.
//!
//! Bevy's `ScheduleRunnerPlugin` updates at a fixed period; a short period wastes a core
//! (with lavapipe, most of one) on updates that present nothing, a long one makes frame
//! times jitter. This runner sleeps until [`NextFrameDue`], polling briefly only while it
//! waits for the decoder or for outputs to drain.

use std::time::{Duration, Instant};

use bevy::app::{AppExit, PluginsState};
use bevy::prelude::*;

use crate::lifecycle::Lifecycle;
use crate::video::NextFrameDue;

/// How often to look again while no frame is queued (waiting on the network or decoder).
const POLL: Duration = Duration::from_millis(4);
/// Longest sleep, so stop requests are seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Runs the app without a window, paced by the video.
pub struct HeadlessRunnerPlugin;

impl Plugin for HeadlessRunnerPlugin {
    fn build(&self, app: &mut App) {
        app.set_runner(run);
    }
}

fn run(mut app: App) -> AppExit {
    if app.plugins_state() != PluginsState::Cleaned {
        while app.plugins_state() == PluginsState::Adding {
            bevy::tasks::tick_global_task_pools_on_main_thread();
        }
        app.finish();
        app.cleanup();
    }
    loop {
        app.update();
        if let Some(exit) = app.should_exit() {
            return exit;
        }
        let world = app.world();
        let stopping = world
            .get_resource::<Lifecycle>()
            .is_some_and(|l| l.stopping());
        let due = world.get_resource::<NextFrameDue>().and_then(|d| d.0);
        let now = Instant::now();
        let sleep = match due {
            _ if stopping => POLL,
            Some(due) => due.saturating_duration_since(now).min(MAX_SLEEP),
            None => POLL,
        };
        if !sleep.is_zero() {
            std::thread::sleep(sleep);
        }
    }
}
