//! [`ShutdownPlugin`]: how a show ends. `--duration`, a closed window, Q or Esc, or a stop
//! request from anywhere become an exit once the outputs have every frame rendered so far.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use bevy::window::WindowCloseRequested;
use tracing::{info, warn};

use crate::lifecycle::Lifecycle;
use crate::output::FrameSink;
use crate::show::Screenshots;
use crate::show::state::KeyboardCaptured;
use crate::video::{Pacing, PlaybackStats, VideoFeed};

/// How long a stop waits for frames already rendered to reach the outputs.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(600);

/// Ends the show: `limit` is `--duration`; `window` adds the window's own ways to stop.
pub struct ShutdownPlugin {
    /// `--duration`.
    pub limit: Option<Duration>,
    /// True with a window: closing it, Q and Esc stop the show.
    pub window: bool,
}

impl Plugin for ShutdownPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(RunLimit(self.limit))
            .add_systems(Last, drive_shutdown);
        if self.window {
            app.add_systems(Update, stop_on_close_or_key);
        }
    }
}

#[derive(Resource)]
struct RunLimit(Option<Duration>);

fn stop_on_close_or_key(
    mut closes: MessageReader<WindowCloseRequested>,
    keys: Res<ButtonInput<KeyCode>>,
    captured: Res<KeyboardCaptured>,
    lifecycle: Res<Lifecycle>,
) {
    // Typing a preset name must not quit the show.
    let key = !captured.0 && keys.any_just_pressed([KeyCode::KeyQ, KeyCode::Escape]);
    if closes.read().count() > 0 || key {
        lifecycle.request_stop();
    }
}

/// Turns a stop request into an exit once the outputs have every frame rendered so far.
#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn drive_shutdown(
    lifecycle: Res<Lifecycle>,
    stats: Res<PlaybackStats>,
    feed: Option<Res<VideoFeed>>,
    limit: Res<RunLimit>,
    sink: Option<Res<FrameSink>>,
    screenshots: Option<Res<Screenshots>>,
    mut stop_seen: Local<Option<Instant>>,
    mut exit: MessageWriter<AppExit>,
    pacing: Res<Pacing>,
) {
    // Offline, --duration is stream time: the render runs faster (or slower) than the clock.
    let played = if pacing.offline {
        stats
            .pts_span
            .map(|(first, last)| last.saturating_sub(first))
    } else {
        stats.first_frame_at.map(|t| t.elapsed())
    };
    if let (Some(limit), Some(played)) = (limit.0, played)
        && played >= limit
        && !lifecycle.stopping()
    {
        info!("--duration reached");
        lifecycle.request_stop();
    }
    if !lifecycle.stopping() {
        return;
    }
    // Exit one update after the stop is seen at the earliest, so every system (the status
    // line's final report, readback requests) sees the stopping state once.
    let Some(since) = *stop_seen else {
        *stop_seen = Some(Instant::now());
        return;
    };
    // Frames already rendered, and screenshots on their way to disk, are waited for.
    let pending = sink.as_ref().map_or(0, |s| s.pending()) + screenshots.map_or(0, |s| s.pending());
    if pending == 0 || since.elapsed() > DRAIN_TIMEOUT {
        if pending > 0 {
            warn!("{pending} rendered frame(s) did not reach the outputs in time");
        }
        let Some(feed) = feed else {
            exit.write(AppExit::Success); // the stream never opened: nothing to sum up
            return;
        };
        info!(
            "played {} frames ({} skipped by the clock, {} dropped in the queue, {} stalls, \
             {} catch-ups); {} texture set(s) allocated",
            stats.presented,
            stats.skipped,
            feed.dropped(),
            stats.stalls,
            stats.catch_ups,
            stats.texture_allocations
        );
        if let (true, Some(start), Some((first, last))) =
            (pacing.offline, stats.first_frame_at, stats.pts_span)
        {
            let wall = start.elapsed().as_secs_f64().max(1e-3);
            let video = (last - first).as_secs_f64();
            info!(
                "rendered offline: {} frames, {video:.1} s of video in {wall:.1} s ({:.1} fps, {:.2}x real time)",
                stats.presented,
                stats.presented as f64 / wall,
                video / wall
            );
        } else if sink.is_some() && stats.skipped > 0 {
            warn!(
                "{} frame(s) were skipped because rendering fell behind real time: they are not in \
                 the outputs (a finite input into files renders every frame without --realtime)",
                stats.skipped
            );
        }
        exit.write(AppExit::Success);
    }
}
