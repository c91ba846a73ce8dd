//! The show's sound handed on: the `lucid-audio` thread takes each chunk the decode thread
//! made and gives it to every tap (each output that carries sound, and the analysis),
//! measuring its level on the way. A live source's chunk that a tap cannot take is dropped
//! for that tap (counted); a file's waits, so nothing is lost. The thread ends with the
//! decode thread's feed, and its taps with it: an output waiting for the last of the sound
//! knows it has all of it when its tap disconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bevy::prelude::Resource;
use crossbeam_channel::{Sender, TrySendError};

use crate::decode::{AudioChunk, AudioFeed, AudioInfo, audio::AudioCounters};
use crate::lifecycle::{Lifecycle, send_until_stop};

/// Where the bus hands a consumer its chunks.
pub type SoundTap = Sender<Arc<AudioChunk>>;

/// Chunks queued for one tap: about 10 s of 1024-sample frames.
pub const TAP_QUEUE: usize = 512;

/// The sound the show carries, for the status line, stats JSON and overlay.
#[derive(Resource, Debug, Clone)]
pub struct SoundReport {
    /// Whose sound: `url` (the --url source's) or `layer N` (`--audio-from N`).
    pub source: String,
    /// The source's sound.
    pub info: AudioInfo,
    /// Chunks dropped before the bus, and packets that did not decode.
    pub counters: Arc<AudioCounters>,
    /// The level (RMS of both channels, 0..1) of the last chunk handed on, as `f32` bits.
    level: Arc<AtomicU32>,
    /// Chunks a tap could not take (live sources only).
    dropped: Arc<AtomicU64>,
}

impl SoundReport {
    /// The level (RMS, 0..1) of the sound handed on most recently.
    pub fn level(&self) -> f32 {
        f32::from_bits(self.level.load(Ordering::Relaxed))
    }

    /// Chunks of sound lost on the way: the decode thread's queue or a tap's was full
    /// (live sources), plus packets that did not decode.
    pub fn lost(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
            + self.counters.errors.load(Ordering::Relaxed)
            + self.dropped.load(Ordering::Relaxed)
    }
}

/// Starts the `lucid-audio` thread handing `feed`'s chunks to every tap.
pub fn start(feed: AudioFeed, taps: Vec<SoundTap>, lifecycle: &Lifecycle) -> SoundReport {
    let report = SoundReport {
        source: "url".into(),
        info: feed.info.clone(),
        counters: feed.counters.clone(),
        level: Arc::default(),
        dropped: Arc::default(),
    };
    let (level, dropped) = (report.level.clone(), report.dropped.clone());
    let stop = lifecycle.stop_flag();
    lifecycle.spawn("lucid-audio", move || {
        for chunk in feed.chunks.iter() {
            level.store(rms(&chunk).to_bits(), Ordering::Relaxed);
            let chunk = Arc::new(chunk);
            for tx in &taps {
                if feed.live {
                    if let Err(TrySendError::Full(_)) = tx.try_send(chunk.clone()) {
                        dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                send_until_stop(tx, chunk.clone(), &stop);
            }
        }
    });
    report
}

/// The RMS of both channels of a chunk, 0..1.
fn rms(chunk: &AudioChunk) -> f32 {
    let n = (chunk.left.len() + chunk.right.len()).max(1);
    let sum: f32 = chunk.left.iter().chain(&chunk.right).map(|s| s * s).sum();
    (sum / n as f32).sqrt().min(1.0)
}
