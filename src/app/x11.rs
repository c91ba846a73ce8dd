//! Xlib before the window: the one FFI room of `app`. `XInitThreads` first (FFmpeg's VDPAU
//! and VAAPI devices open X displays on the decode thread while winit opens the window's
//! on the main thread), then a real Xlib connection to the display, retried for a moment,
//! so a display that is slow to take its first clients (an installation's X still starting,
//! a server busy with another client) waits here instead of failing the window, and a
//! display that never answers fails in one clear line.
#![allow(
    unsafe_code,
    reason = "Xlib's XInitThreads, XOpenDisplay and XCloseDisplay through x11-dl"
)]

use std::ffi::CString;
use std::time::{Duration, Instant};

/// Makes Xlib thread-safe and checks that `display` takes an Xlib client, trying until
/// `patience` has passed. `Err` says what was tried; without libX11 there is nothing to
/// check (winit then says what is missing).
pub(super) fn open_display(display: &str, patience: Duration) -> Result<(), String> {
    let Ok(xlib) = x11_dl::xlib::Xlib::open() else {
        return Ok(());
    };
    static THREADS: std::sync::Once = std::sync::Once::new();
    THREADS.call_once(|| {
        // SAFETY: `XInitThreads` takes no arguments and runs once, before any other Xlib
        // call of the process (no display is open yet). x11-dl keeps libX11 loaded for the
        // life of the process, so it holds.
        unsafe { (xlib.XInitThreads)() };
    });
    let name = CString::new(display).map_err(|_| format!("DISPLAY={display:?} is not a name"))?;
    let deadline = Instant::now() + patience;
    let mut tries = 0;
    loop {
        tries += 1;
        // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
        let opened = unsafe { (xlib.XOpenDisplay)(name.as_ptr()) };
        if !opened.is_null() {
            // SAFETY: `opened` is the display just opened here and closed once.
            unsafe { (xlib.XCloseDisplay)(opened) };
            if tries > 1 {
                tracing::info!("the display took a client after {tries} tries");
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "Xlib could not open DISPLAY={display} ({tries} tries)"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
