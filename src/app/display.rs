//! Checks that a window can open before the renderer tries: a named X display that nobody
//! answers on fails in one clear line, not deep inside the window system's setup.

use std::time::Duration;

use super::x11;
use crate::error::{LucidError, Result};

/// A named X display that nobody answers on fails here, in one clear line, instead of
/// deep inside the window system's setup.
pub(super) fn check_display() -> Result<()> {
    let display = std::env::var("DISPLAY").ok().filter(|d| !d.is_empty());
    let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some_and(|w| !w.is_empty());
    match display {
        None if wayland => Ok(()),
        None => Err(LucidError::Render(
            "cannot open a window: no display (DISPLAY and WAYLAND_DISPLAY are unset); \
             run headless with --no-preview"
                .into(),
        )),
        Some(_) if wayland => Ok(()),
        Some(d) if x11_reachable(&d) => {
            x11::open_display(&d, Duration::from_secs(3)).map_err(|why| {
                LucidError::Render(format!(
                    "cannot open a window: {why}; check DISPLAY and its access (xhost), or run \
                 headless with --no-preview"
                ))
            })
        }
        Some(d) => Err(LucidError::Render(format!(
            "cannot open a window: the display server is not reachable (DISPLAY={d}); check \
             DISPLAY, or run headless with --no-preview"
        ))),
    }
}

/// True when an X server listens where `DISPLAY` says (`:N` or `unix:N` on its socket,
/// `host:N` on TCP port 6000+N).
fn x11_reachable(display: &str) -> bool {
    let Some((host, rest)) = display.rsplit_once(':') else {
        return false;
    };
    let Ok(number) = rest.split('.').next().unwrap_or("").parse::<u16>() else {
        return false;
    };
    if host.is_empty() || host == "unix" {
        let socket = format!("/tmp/.X11-unix/X{number}");
        return std::os::unix::net::UnixStream::connect(socket).is_ok();
    }
    use std::net::ToSocketAddrs;
    let Some(port) = 6000u16.checked_add(number) else {
        return false;
    };
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}
