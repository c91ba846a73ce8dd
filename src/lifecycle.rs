//! How Lucid stops: one shared flag and one error slot, seen by every thread and by Bevy.
//!
//! A stop can come from a signal, `--duration`, the end of the stream, a closed pipe or a
//! failure. Whoever asks, the render loop stops presenting, waits for outputs to receive the
//! frames already rendered, and exits; the writer then finalizes the recording.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::LucidError;
use bevy::prelude::Resource;

/// Shared stop flag and first fatal error.
#[derive(Resource, Clone, Default)]
pub struct Lifecycle {
    stop: Arc<AtomicBool>,
    error: Arc<Mutex<Option<LucidError>>>,
}

impl Lifecycle {
    /// Asks everything to stop cleanly.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// True once a stop was requested.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The flag itself, for threads that poll it.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Records a fatal error (the first one wins) and stops. `main` prints it once, last.
    pub fn fail(&self, err: LucidError) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(err);
        }
        self.request_stop();
    }

    /// Takes the recorded error, if any.
    pub fn take_error(&self) -> Option<LucidError> {
        self.error.lock().ok()?.take()
    }
}
