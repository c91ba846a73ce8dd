//! [`OutputPlugin`]: starts the writer when the stream opens, reads back the canvas for
//! every presented frame and feeds the output threads.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use crossbeam_channel::{Receiver, Sender, bounded};

use super::convert::{self, YuvTarget};
use super::frame::{Pixels, RenderedFrame};
use super::state::OutputStats;
use super::targets::OutputConfig;
use super::writer::{FrameSink, OutputWriter};
use crate::decode::ColorMatrix;
use crate::lifecycle::Lifecycle;
use crate::sound::{LayerSoundFeed, SoundSystems, SoundTaps};
use crate::video::{FramePresented, OutputCanvas, Pacing, StreamReady, VideoSystems};

/// The output threads, handed over once by the plugin that starts them (when the stream's
/// size is known) to whoever finalizes them after the app has exited, or to the stop
/// watchdog. A one-message channel: the sender is the plugin's, each clone of this end
/// can take the writer, and only one ever gets it.
#[derive(Clone)]
pub struct WriterSlot(Receiver<OutputWriter>);

impl WriterSlot {
    /// The plugin's end and the finalizer's end.
    pub fn channel() -> (Sender<OutputWriter>, WriterSlot) {
        let (tx, rx) = bounded(1);
        (tx, WriterSlot(rx))
    }

    /// Takes the writer out (once), if it has started.
    pub fn take(&self) -> Option<OutputWriter> {
        self.0.try_recv().ok()
    }
}

/// Starts the writer when the stream opens (its size and rate are needed), then reads back
/// the canvas for every presented frame and feeds the output threads.
pub struct OutputPlugin {
    config: OutputConfig,
    started: Sender<OutputWriter>,
}

impl OutputPlugin {
    /// Outputs as configured; the size and rate in `config` are filled in from the stream.
    /// The writer goes to `started` once it runs (see [`WriterSlot::channel`]).
    pub fn new(config: OutputConfig, started: Sender<OutputWriter>) -> Self {
        OutputPlugin { config, started }
    }
}

#[derive(Resource)]
struct PendingOutputs {
    config: OutputConfig,
    started: Sender<OutputWriter>,
}

impl Plugin for OutputPlugin {
    fn build(&self, app: &mut App) {
        convert::build(app);
        app.insert_resource(PendingOutputs {
            config: self.config.clone(),
            started: self.started.clone(),
        })
        .init_resource::<OutputStats>()
        .add_systems(
            Update,
            (
                start_writer
                    .run_if(resource_exists::<PendingOutputs>)
                    .before(SoundSystems::Start),
                request_readbacks.run_if(resource_exists::<FrameSink>),
            )
                .chain()
                .after(VideoSystems::Present),
        )
        .add_systems(
            Update,
            report_backpressure
                .run_if(resource_exists::<FrameSink>)
                .before(VideoSystems::Present),
        );
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn start_writer(
    mut commands: Commands,
    mut ready: MessageReader<StreamReady>,
    pending: Res<PendingOutputs>,
    lifecycle: Res<Lifecycle>,
    mut images: ResMut<Assets<Image>>,
    rate: Option<Res<crate::video::OutputRate>>,
    mut taps: ResMut<SoundTaps>,
    layer_sound: Option<Res<LayerSoundFeed>>,
) {
    let Some(ready) = ready.read().last() else {
        return;
    };
    commands.remove_resource::<PendingOutputs>();
    // A layer's sound (`--audio-from N`) is the show's, though its source is still opening.
    let sound = ready.info.audio.is_some() || layer_sound.is_some();
    let config = OutputConfig {
        width: ready.output_size.x,
        height: ready.output_size.y,
        frame_rate: rate.map(|r| r.0).or(ready.info.frame_rate).unwrap_or(30.0),
        ..pending.config.clone()
    };
    match OutputWriter::spawn(config.clone(), sound, &lifecycle) {
        Ok(mut writer) => {
            taps.0.extend(writer.sound_taps());
            let sink = writer.sink();
            if sink.wanted().any(|p| p == Pixels::Yuv) {
                let (w, h) = (config.width, config.height);
                let target = YuvTarget::new(&mut images, w, h, ColorMatrix::conventional(h));
                commands.insert_resource(target);
            }
            commands.insert_resource(sink);
            commands.insert_resource(writer.stats());
            // The slot holds one writer and this runs once: the send cannot block.
            let _ = pending.started.try_send(writer);
        }
        Err(e) => lifecycle.fail(e),
    }
}

/// Tells offline pacing whether the outputs can take another frame.
fn report_backpressure(sink: Res<FrameSink>, mut pacing: ResMut<Pacing>) {
    let full = sink.saturated();
    if pacing.outputs_full != full {
        pacing.outputs_full = full;
    }
}

#[derive(Component)]
struct PendingReadback {
    number: u64,
    pts: Duration,
    pixels: Pixels,
    /// A `Readback` component reads back every frame until its entity is despawned, and
    /// the despawn is deferred: two completions can reach the observer before it applies.
    /// Only the first one (the frame this entity was spawned for) is delivered.
    delivered: AtomicBool,
}

fn request_readbacks(
    mut commands: Commands,
    mut presented: MessageReader<FramePresented>,
    canvas: Option<Res<OutputCanvas>>,
    yuv: Option<Res<YuvTarget>>,
    sink: Res<FrameSink>,
) {
    let Some(canvas) = canvas else { return };
    for ev in presented.read() {
        for pixels in sink.wanted() {
            let image = match (pixels, yuv.as_ref()) {
                (Pixels::Yuv, Some(yuv)) => yuv.image.clone(),
                (Pixels::Rgba, _) => canvas.image.clone(),
                (Pixels::Yuv, None) => continue,
            };
            sink.pending.fetch_add(1, Ordering::SeqCst);
            commands
                .spawn((
                    Readback::texture(image),
                    PendingReadback {
                        number: ev.number,
                        pts: ev.pts,
                        pixels,
                        delivered: AtomicBool::new(false),
                    },
                ))
                .observe(deliver_readback);
        }
    }
}

fn deliver_readback(
    mut event: On<ReadbackComplete>,
    tags: Query<&PendingReadback>,
    sink: Res<FrameSink>,
    mut commands: Commands,
) {
    let entity = event.entity;
    let Ok(tag) = tags.get(entity) else { return };
    if tag.delivered.swap(true, Ordering::SeqCst) {
        return;
    }
    // One readback per presented frame: the component would read back every frame.
    commands.entity(entity).despawn();
    sink.pending.fetch_sub(1, Ordering::SeqCst);
    sink.deliver(
        RenderedFrame {
            number: tag.number,
            pts: tag.pts,
            pixels: std::mem::take(&mut event.data),
        },
        tag.pixels,
    );
}
