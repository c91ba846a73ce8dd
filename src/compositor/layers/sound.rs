//! A layer's sound as the show's (`--audio-from N`). The layer's decode thread stamps its
//! sound on the layer's own stream time, as it does its pictures; the offset that puts the
//! pictures on the video's stream time (fixed when the layer's first frame is shown) puts
//! the sound there too, so it stays on the layer's pictures wherever they land in the show.
//! One feed carries it to the sound bus for the whole show: a looping layer's next run (a
//! new decode thread, a new offset) follows the last, and what was queued of the last run
//! keeps the offset it was made for.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError, bounded};
use tracing::warn;

use super::{LayerState, Layers};
use crate::decode::AudioChunk;
use crate::decode::audio::{AudioCounters, AudioFeed, SAMPLE_RATE};
use crate::sound::LayerSoundFeed;

/// Chunks queued between the forwarder and the bus (as between a decode thread and it).
const QUEUE: usize = 256;

/// The layer's sound on its way to the bus.
#[derive(Resource)]
pub(super) struct LayerSound {
    /// Dropped once the layer has no more sound to give (it ended or was removed): the
    /// bus then ends, and whoever waits for the rest of the sound knows it has it all.
    tx: Option<Sender<AudioChunk>>,
    /// The feed's receiving end, until the layer's first run opens and says what it is
    /// (taken then: `None` means a run's sound was taken, and no run left means all of it
    /// was handed on).
    rx: Option<Receiver<AudioChunk>>,
    /// Each run's sound, oldest first, with the offset of its pictures once known.
    runs: VecDeque<(Receiver<AudioChunk>, Option<f64>)>,
    /// A chunk the bus had no room for, sent first next time.
    held: Option<AudioChunk>,
    /// Said once that the layer has no sound.
    warned: bool,
    counters: Arc<AudioCounters>,
}

/// Sets the forwarder up: the bus waits for [`LayerSoundFeed`] instead of the `--url`
/// source's sound.
pub(super) fn build(app: &mut App, index: usize) {
    let (tx, rx) = bounded(QUEUE);
    app.insert_resource(LayerSound {
        tx: Some(tx),
        rx: Some(rx),
        runs: VecDeque::new(),
        held: None,
        warned: false,
        counters: Arc::default(),
    })
    .insert_resource(LayerSoundFeed {
        layer: index + 1,
        feed: None,
    });
}

/// Each frame: takes a new run's sound when its source opened, and hands on what each run
/// made, moved onto the video's stream time.
pub(super) fn forward_layer_sound(
    mut layers: ResMut<Layers>,
    mut sound: ResMut<LayerSound>,
    mut feed: ResMut<LayerSoundFeed>,
) {
    let origin = layers.origin;
    let Some(layer) = layers.layers.iter_mut().find(|l| l.sound) else {
        // Removed by the overlay: its sound ends with it.
        sound.tx = None;
        return;
    };
    let opened = layer.decode.as_mut().map(|d| d.info.audio.take());
    if opened.as_ref().is_some_and(Option::is_none) && sound.rx.is_some() && !sound.warned {
        sound.warned = true;
        warn!(
            "layer {}: {} has no sound; the show's sound (--audio-from {}) is silence",
            feed.layer, layer.shown_name, feed.layer
        );
    }
    if let Some(opened) = opened.flatten() {
        if let Some(rx) = sound.rx.take() {
            feed.feed = Some(AudioFeed {
                info: opened.info.clone(),
                chunks: rx,
                counters: sound.counters.clone(),
                live: opened.live,
            });
        }
        sound.runs.push_back((opened.chunks, None));
    }
    // The newest run's pictures got their offset (its first frame was shown).
    if let (Some(offset), Some((_, slot))) = (layer.offset, sound.runs.back_mut())
        && slot.is_none()
    {
        *slot = Some(offset);
    }
    let Some(origin) = origin else { return };
    forward(&mut sound, origin);
    // Its source ended (its sound's channel closed with the decode thread) and will not
    // play again: the sound is all there, even while its last pictures are still queued.
    let last_run = !layer.spec.looped
        || (matches!(layer.state, LayerState::Ended | LayerState::Failed)
            && layer.opening.is_none());
    let started = sound.rx.is_none();
    if last_run && started && sound.runs.is_empty() && sound.held.is_none() {
        sound.tx = None;
    }
}

fn forward(sound: &mut LayerSound, origin: Duration) {
    let Some(tx) = sound.tx.clone() else { return };
    if let Some(chunk) = sound.held.take()
        && let Err(TrySendError::Full(chunk)) = tx.try_send(chunk)
    {
        sound.held = Some(chunk);
        return;
    }
    while let Some((rx, offset)) = sound.runs.front() {
        // A run whose pictures are not up yet: its sound waits with them.
        let Some(offset) = *offset else { return };
        let chunk = match rx.try_recv() {
            Ok(chunk) => chunk,
            Err(TryRecvError::Empty) => return,
            Err(TryRecvError::Disconnected) => {
                sound.runs.pop_front();
                continue;
            }
        };
        let Some(chunk) = moved(chunk, origin, offset) else {
            continue;
        };
        if let Err(TrySendError::Full(chunk)) = tx.try_send(chunk) {
            sound.held = Some(chunk);
            return;
        }
    }
}

/// A chunk on the layer's stream time moved onto the video's: `origin` (the video's first
/// frame) plus the layer time plus the offset of its pictures. Samples that would come
/// before the video's first frame are cut; `None` when nothing is left.
fn moved(mut chunk: AudioChunk, origin: Duration, offset: f64) -> Option<AudioChunk> {
    let at = origin.as_secs_f64() + chunk.pts.as_secs_f64() + offset;
    if at < 0.0 {
        let cut = ((-at * f64::from(SAMPLE_RATE)).round() as usize).min(chunk.len());
        chunk.left.drain(..cut);
        chunk.right.drain(..cut);
    }
    chunk.pts = Duration::from_secs_f64(at.max(0.0));
    (!chunk.is_empty()).then_some(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(pts_ms: u64, samples: usize) -> AudioChunk {
        AudioChunk {
            pts: Duration::from_millis(pts_ms),
            left: vec![0.5; samples],
            right: vec![0.5; samples],
        }
    }

    #[test]
    fn a_chunk_lands_where_the_layer_s_pictures_do() {
        // The video started at 10 s; the layer's frame 0 was shown 2.5 s into the video.
        let c = moved(chunk(1000, 480), Duration::from_secs(10), 2.5).unwrap();
        assert_eq!(c.pts, Duration::from_millis(13_500));
        assert_eq!(c.len(), 480);
        // A layer whose timestamps start late (a live source) has a negative offset.
        let c = moved(chunk(60_000, 480), Duration::ZERO, -59.0).unwrap();
        assert_eq!(c.pts, Duration::from_secs(1));
        // Before the video's first frame: cut.
        let c = moved(chunk(0, 480), Duration::ZERO, -0.005).unwrap();
        assert_eq!((c.pts, c.len()), (Duration::ZERO, 240));
        assert!(moved(chunk(0, 480), Duration::ZERO, -1.0).is_none());
    }

    #[test]
    fn each_run_keeps_its_own_offset_and_a_full_bus_loses_nothing() {
        let (tx, bus) = bounded(2);
        let (run1_tx, run1) = bounded(8);
        let (run2_tx, run2) = bounded(8);
        let mut sound = LayerSound {
            tx: Some(tx),
            rx: None,
            runs: VecDeque::from([(run1, Some(1.0)), (run2, None)]),
            held: None,
            warned: false,
            counters: Arc::default(),
        };
        for ms in [0, 20, 40] {
            run1_tx.send(chunk(ms, 960)).unwrap();
        }
        drop(run1_tx);
        run2_tx.send(chunk(0, 960)).unwrap();
        forward(&mut sound, Duration::ZERO);
        // Two fit; the third is held, not lost.
        let got: Vec<_> = bus.try_iter().map(|c| c.pts.as_millis()).collect();
        assert_eq!(got, [1000, 1020]);
        // The second run waits for its pictures' offset.
        forward(&mut sound, Duration::ZERO);
        let got: Vec<_> = bus.try_iter().map(|c| c.pts.as_millis()).collect();
        assert_eq!(got, [1040]);
        assert_eq!(sound.runs.len(), 1, "the first run is done");
        sound.runs[0].1 = Some(5.0);
        forward(&mut sound, Duration::ZERO);
        let got: Vec<_> = bus.try_iter().map(|c| c.pts.as_millis()).collect();
        assert_eq!(got, [5000]);
    }
}
