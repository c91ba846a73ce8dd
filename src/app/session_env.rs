//! The process environment Lucid needs before any thread starts.
//!
//! Mesa's Vulkan device-select layer asks Wayland which GPU drives the display, and
//! libwayland writes "error: XDG_RUNTIME_DIR is invalid or not set in the environment." to
//! stderr for each Vulkan instance when there is no user session: a systemd system
//! service, a cron job, CI. Two false error lines in every installation's journal. With no
//! runtime directory there is no Wayland display to ask, so Lucid starts itself again in
//! place (`exec`: the same process, the same pid for systemd) with the layer off
//! (`NODEVICE_SELECT=1`, Mesa's own switch); wgpu still chooses the adapter.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;

/// Mesa's switch for its device-select layer.
const NO_DEVICE_SELECT: &str = "NODEVICE_SELECT";

/// Re-executes Lucid with Mesa's device-select layer off when there is no Wayland session
/// for it to ask. Returns only when nothing needed doing, or when `exec` failed (then
/// the two lines appear, and nothing else changes). Call first thing in `main`.
pub fn settle() {
    if !needs_exec(
        std::env::var_os("XDG_RUNTIME_DIR"),
        std::env::var_os("WAYLAND_DISPLAY"),
        std::env::var_os(NO_DEVICE_SELECT),
    ) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(NO_DEVICE_SELECT, "1")
        .exec();
    // Only reached when exec failed: carry on as we are.
    let _ = error;
}

/// True when libwayland would complain: no absolute runtime directory, and no absolute
/// display path that bypasses it; and the layer is not off already (so this runs once).
fn needs_exec(
    runtime_dir: Option<OsString>,
    display: Option<OsString>,
    already: Option<OsString>,
) -> bool {
    let absolute = |v: &Option<OsString>| {
        v.as_ref()
            .is_some_and(|v| std::path::Path::new(v).is_absolute())
    };
    already.is_none() && !absolute(&runtime_dir) && !absolute(&display)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<OsString> {
        Some(s.into())
    }

    #[test]
    fn only_a_session_without_a_runtime_directory_needs_it_and_only_once() {
        assert!(needs_exec(None, None, None));
        assert!(
            needs_exec(os("relative"), None, None),
            "libwayland wants /..."
        );
        assert!(!needs_exec(os("/run/user/1000"), None, None));
        assert!(!needs_exec(None, os("/tmp/wayland-0"), None));
        assert!(!needs_exec(None, None, os("1")), "already done");
    }
}
