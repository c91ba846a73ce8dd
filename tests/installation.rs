//! Installation mode, as a venue's technician meets it: logs a journal can keep, and (as
//! they land) kiosk keys under Xvfb, systemd's notify protocol on a real socket, state that
//! survives a SIGKILL.

mod support;

use std::time::Duration;

use support::*;

const LIMIT: Duration = Duration::from_secs(90);

#[test]
fn a_headless_run_under_a_service_manager_logs_no_false_errors_and_no_terminal_codes() {
    // A systemd system service has no XDG_RUNTIME_DIR and a pipe for stderr. Mesa's Vulkan
    // device-select layer used to make libwayland print two "error: XDG_RUNTIME_DIR is
    // invalid" lines into every journal.
    let out = run_with_limit(
        lucid()
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("NODEVICE_SELECT")
            .args(["--no-preview", "--duration", "2", "--pipe", "y4m"]),
        LIMIT,
    );
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        Y4m::parse(&out.stdout).frames.len() >= 30,
        "it rendered: {err}"
    );
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("error:") || l.contains(" ERROR "))
        .collect();
    assert!(errors.is_empty(), "false errors in the journal: {errors:?}");
    assert!(!err.contains('\u{1b}'), "terminal codes in a pipe: {err:?}");
    assert!(
        !err.contains('\r'),
        "a status line rewritten in place: {err:?}"
    );
    assert!(err.lines().any(|l| l.starts_with("status: ")), "{err}");
}
