//! Each output's state as its thread reports it, read by the status line, the stats file and
//! the overlay.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bevy::prelude::Resource;

/// Where an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputPhase {
    /// Writing.
    Live,
    /// A network output opening its first connection.
    Connecting,
    /// A network output whose connection failed or dropped: trying again.
    Reconnecting,
    /// Finalized.
    Finished,
    /// Failed while writing (a full disk, a device gone): its `error` says why. The show
    /// goes on without it while a window or another output remains.
    Failed,
}

/// One output's state as its thread reports it: frames written and dropped (a full queue,
/// or a network output that is down), bytes, phase, encoder and last error.
#[derive(Debug, Default)]
pub struct OutputState {
    /// Frames written.
    pub written: AtomicU64,
    /// Frames this output dropped: it did not keep up, or its connection was down.
    pub dropped: AtomicU64,
    /// Bytes written (encoded outputs).
    pub bytes: AtomicU64,
    reconnects: AtomicU64,
    phase: AtomicU8,
    encoder: Mutex<Option<&'static str>>,
    error: Mutex<Option<String>>,
    meter: Mutex<Option<(Instant, u64, f64)>>,
    /// Samples of silence its sound track got where the source's sound had a gap.
    pub audio_filled: AtomicU64,
}

impl OutputState {
    /// The output's phase.
    pub fn phase(&self) -> OutputPhase {
        match self.phase.load(Ordering::Relaxed) {
            1 => OutputPhase::Connecting,
            2 => OutputPhase::Reconnecting,
            3 => OutputPhase::Finished,
            4 => OutputPhase::Failed,
            _ => OutputPhase::Live,
        }
    }

    pub(super) fn set_phase(&self, phase: OutputPhase) {
        self.phase.store(phase as u8, Ordering::Relaxed);
    }

    pub(super) fn set_encoder(&self, name: &'static str) {
        if let Ok(mut e) = self.encoder.lock() {
            *e = Some(name);
        }
    }

    /// The FFmpeg encoder this output uses, when it encodes.
    pub fn encoder(&self) -> Option<&'static str> {
        self.encoder.lock().ok().and_then(|e| *e)
    }

    pub(super) fn set_error(&self, error: Option<String>) {
        if let Ok(mut e) = self.error.lock() {
            *e = error;
        }
    }

    /// Why a network output is down, or last went down.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    pub(super) fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Times a network output connected again after a failure.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Bits a second written over the last second or more (0 until it has been measured
    /// over a second); call it about once a second.
    pub fn bitrate(&self, now: Instant) -> f64 {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let Ok(mut meter) = self.meter.lock() else {
            return 0.0;
        };
        let (since, before, rate) = meter.get_or_insert((now, bytes, 0.0));
        let span = now.saturating_duration_since(*since).as_secs_f64();
        if span >= 0.9 {
            *rate = (bytes.saturating_sub(*before) as f64 * 8.0) / span;
            *since = now;
            *before = bytes;
        }
        *rate
    }
}

/// Each output's state by name (`record`, `pipe`, `rtmp`), for the status line, stats JSON
/// and overlay.
#[derive(Resource, Clone, Default)]
pub struct OutputStats(pub Vec<(String, Arc<OutputState>)>);
