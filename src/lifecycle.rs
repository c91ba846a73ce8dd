//! How Lucid stops: one shared flag and one error slot, seen by every thread and by Bevy.
//!
//! A stop can come from a signal, `--duration`, the end of the stream, a closed pipe, a
//! failure or a panic. Whoever asks, the render loop stops presenting, waits briefly for
//! outputs to receive the frames already rendered, and exits; the writers then finalize
//! their files. Threads are started with [`Lifecycle::spawn`], which turns a panic into a
//! fatal [`LucidError::Internal`] instead of a silently dead stage.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::LucidError;
use bevy::prelude::Resource;
use crossbeam_channel::{SendTimeoutError, Sender};

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
        self.fail_at_exit(err);
        self.request_stop();
    }

    /// Records an error (the first one wins) that sets the run's exit code, without
    /// stopping: a part failed and the show goes on without it (an output). `main` prints
    /// it once, last.
    pub fn fail_at_exit(&self, err: LucidError) {
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(err);
        }
    }

    /// Takes the recorded error, if any.
    pub fn take_error(&self) -> Option<LucidError> {
        self.error.lock().ok()?.take()
    }

    /// Starts a named thread whose panic becomes this run's fatal error (exit 70) and a
    /// stop, so the other stages finish cleanly and the outputs are finalized.
    pub fn spawn<F>(&self, name: &str, body: F) -> JoinHandle<()>
    where
        F: FnOnce() + Send + 'static,
    {
        let lifecycle = self.clone();
        let thread = name.to_string();
        spawn_thread(name, move || {
            if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(body)) {
                lifecycle.fail(LucidError::Internal {
                    thread,
                    message: panic_message(payload.as_ref()),
                });
            }
        })
    }
}

/// Starts a named thread. Only the OS refusing a thread makes this fail, and then nothing
/// can go on: that is a panic of the caller's thread, handled there.
pub fn spawn_thread<F>(name: &str, body: F) -> JoinHandle<()>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .unwrap_or_else(|e| panic!("cannot start thread {name}: {e}"))
}

/// Waits for `handle`'s thread to end, up to `deadline`. True when it ended (and was
/// joined); false when it is still running, and is then left behind.
pub fn join_by(handle: JoinHandle<()>, deadline: Instant) -> bool {
    if !ended_by(&handle, deadline) {
        return false;
    }
    let _ = handle.join();
    true
}

/// Waits for `handle`'s thread to end, up to `deadline`, without joining it. True when it
/// ended.
pub fn ended_by(handle: &JoinHandle<()>, deadline: Instant) -> bool {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// How long a blocked [`send_until_stop`] waits before looking at the stop flag again.
const SEND_POLL: Duration = Duration::from_millis(50);

/// Sends `value` on a bounded channel, waiting while it is full: what a finite input does,
/// where nothing may be lost. False once `stop` is set (the value is dropped); true when it
/// was sent, or when nobody receives any more (the receiver's stage is gone: not this
/// sender's failure).
pub fn send_until_stop<T>(tx: &Sender<T>, mut value: T, stop: &AtomicBool) -> bool {
    loop {
        match tx.send_timeout(value, SEND_POLL) {
            Ok(()) | Err(SendTimeoutError::Disconnected(_)) => return true,
            Err(SendTimeoutError::Timeout(back)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                value = back;
            }
        }
    }
}

thread_local! {
    /// Where the last panic on this thread happened, noted by the hook for the catcher.
    static PANIC_LOCATION: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Replaces Rust's panic printout: the hook only notes where the panic happened, and the
/// code that catches it ([`Lifecycle::spawn`], `app::run`) reports it once, as an error
/// with the outputs finalized. The full printout is still there with `RUST_LOG=debug`.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::debug!("panic: {info}");
        PANIC_LOCATION.with(|p| *p.borrow_mut() = Some(location));
    }));
}

/// The text a panic was raised with (`panic!("...")` gives a `&str` or a `String`), and
/// where, when the panic happened on this thread.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    match PANIC_LOCATION.with(|p| p.borrow_mut().take()) {
        Some(at) if !at.is_empty() => format!("{text} (at {at})"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_thread_becomes_a_fatal_error_and_a_stop() {
        let lifecycle = Lifecycle::default();
        let handle = lifecycle.spawn("lucid-test", || panic!("boom {}", 7));
        handle
            .join()
            .expect("the panic was caught inside the thread");
        assert!(lifecycle.stopping());
        match lifecycle.take_error() {
            Some(LucidError::Internal { thread, message }) => {
                assert_eq!(thread, "lucid-test");
                assert!(message.starts_with("boom 7"), "{message}");
            }
            other => panic!("expected an internal error, got {other:?}"),
        }
    }
}
