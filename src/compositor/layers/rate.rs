//! Who sets the pace with layers: offline the video waits for layers still decoding, in a
//! window the display's refresh rate, offline the fastest source's rate.

use bevy::prelude::*;
use tracing::info;

use super::*;
use crate::video::{OutputTicks, Pacing, PlaybackStats, StreamDescription};

/// Offline, the video waits for a layer that is opening or has not decoded its next frame,
/// so what each frame composites does not depend on the machine's speed.
pub(super) fn hold_offline(layers: Res<Layers>, pacing: Option<ResMut<Pacing>>) {
    let Some(mut pacing) = pacing else { return };
    let waiting = pacing.offline
        && layers.layers.iter().any(|l| match l.state {
            // Opening, or opening again to loop.
            _ if l.opening.is_some() => true,
            LayerState::Connecting => true,
            LayerState::Playing => {
                l.pending.is_none()
                    && l.decode
                        .as_ref()
                        .is_some_and(|d| d.frames.rx.is_empty() && d.end.is_empty())
            }
            LayerState::Stalled | LayerState::Ended | LayerState::Failed | LayerState::Closed => {
                false
            }
        });
    if pacing.layers_waiting != waiting {
        pacing.layers_waiting = waiting;
    }
}

/// In a window, a show with layers runs at the display's refresh rate (without `--fps`):
/// each layer then shows its frames at its own rate, however the `--url` video's compare.
/// Decided once, before the video opens (its clock starts with the rate); without layers,
/// or where the display does not say its rate (Xvfb), the video's frames keep setting the
/// pace.
pub(super) fn pick_display_rate(
    mut commands: Commands,
    layers: Res<Layers>,
    rate: Option<Res<crate::video::OutputRate>>,
    opened: Option<Res<StreamDescription>>,
    monitors: Query<&bevy::window::Monitor, With<bevy::window::PrimaryMonitor>>,
    mut decided: Local<bool>,
) {
    if *decided || rate.is_some() || opened.is_some() {
        *decided = true;
        return;
    }
    let Ok(monitor) = monitors.single() else {
        return;
    };
    *decided = true;
    let Some(hz) = monitor
        .refresh_rate_millihertz
        .map(|mhz| f64::from(mhz) / 1000.0)
        .filter(|hz| (1.0..=240.0).contains(hz))
    else {
        return;
    };
    if !layers.is_empty() {
        info!("output at {hz:.2} fps, the display's refresh rate (--fps sets one)");
        commands.insert_resource(crate::video::OutputRate(hz));
    }
}

/// Offline without `--fps`, the output runs at the fastest source's rate: when a layer is
/// faster than the `--url` video, an output clock at the layer's rate is started before
/// the first frame (offline, every layer has opened by then), so each of its frames is
/// shown. Live, the `--url` video keeps setting the pace (layers open after it starts).
pub(super) fn pick_output_rate(
    mut commands: Commands,
    layers: Res<Layers>,
    pacing: Option<Res<Pacing>>,
    stream: Option<Res<StreamDescription>>,
    ticks: Option<Res<OutputTicks>>,
    stats: Res<PlaybackStats>,
    mut decided: Local<bool>,
) {
    let (Some(pacing), Some(stream)) = (pacing, stream) else {
        return;
    };
    if *decided || !pacing.offline || pacing.layers_waiting || layers.is_empty() {
        return;
    }
    *decided = true;
    if ticks.is_some() || stats.presented > 0 {
        return;
    }
    let Some(video) = stream.0.frame_rate else {
        return;
    };
    let fastest = layers
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some((i, l.rate?)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((i, rate)) = fastest.filter(|(_, rate)| *rate > video + 0.01) {
        info!(
            "output at {rate:.2} fps, layer {}'s rate (the fastest source; --fps sets one)",
            i + 1
        );
        commands.insert_resource(OutputTicks::new(rate));
    }
}
