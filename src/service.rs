//! Running under a service manager: systemd's notify protocol (`sd_notify(3)`), the few
//! lines of it Lucid needs, spoken over the datagram socket `NOTIFY_SOCKET` names.
//!
//! - `READY=1` once the show is up: the first picture, or (with a window) the waiting
//!   slate, so `Type=notify` units order after a display that shows something.
//! - `WATCHDOG=1` from the render loop at half of `WATCHDOG_USEC`: a loop that freezes
//!   stops the pings, and `WatchdogSec=` restarts Lucid.
//! - `STATUS=` the status line (at most once a second, when it changed), so
//!   `systemctl status` says what the screen shows; `STOPPING=1` when the show ends.
//!
//! [`Notifier`] is the protocol and keeps free of Bevy; [`ServicePlugin`] ties it to the
//! frame loop.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use tracing::{debug, warn};

use crate::lifecycle::Lifecycle;
use crate::status::LatestStatus;
use crate::video::PlaybackStats;

/// How often `STATUS=` may change.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// With a window, the updates after which the waiting slate is on screen.
const SLATE_UPDATES: u32 = 3;

/// What the service manager asked for, from the environment it started Lucid in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// `NOTIFY_SOCKET`: a path, or `@name` in the abstract namespace.
    pub socket: String,
    /// `WATCHDOG_USEC`, when it is meant for this process (`WATCHDOG_PID`, if set, is ours).
    pub watchdog: Option<Duration>,
}

impl ServiceConfig {
    /// From the environment: `None` when no service manager listens.
    pub fn from_env() -> Option<ServiceConfig> {
        let var = |name| std::env::var(name).ok();
        Self::from_vars(
            var("NOTIFY_SOCKET"),
            var("WATCHDOG_USEC"),
            var("WATCHDOG_PID"),
            std::process::id(),
        )
    }

    fn from_vars(
        socket: Option<String>,
        watchdog_usec: Option<String>,
        watchdog_pid: Option<String>,
        pid: u32,
    ) -> Option<ServiceConfig> {
        let socket = socket.filter(|s| s.starts_with('/') || s.starts_with('@'))?;
        let ours = watchdog_pid.is_none_or(|p| p.trim().parse() == Ok(pid));
        let watchdog = watchdog_usec
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && ours)
            .map(Duration::from_micros);
        Some(ServiceConfig { socket, watchdog })
    }

    /// How often to ping: half the watchdog's timeout, as sd_watchdog_enabled(3) advises.
    pub fn ping_every(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }
}

/// The notify socket.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// Opens an unbound datagram socket toward `config.socket`.
    pub fn open(config: &ServiceConfig) -> std::io::Result<Notifier> {
        let target = match config.socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt as _;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => std::os::unix::net::SocketAddr::from_pathname(PathBuf::from(&config.socket))?,
        };
        Ok(Notifier {
            socket: UnixDatagram::unbound()?,
            target,
        })
    }

    /// Sends one message (`KEY=value` lines). A manager that went away is not Lucid's
    /// problem: the error is returned for a debug line, nothing more.
    pub fn send(&self, message: &str) -> std::io::Result<()> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.target)
            .map(|_| ())
    }
}

/// A status line as `STATUS=` takes it: one line, no newline.
pub fn status_message(line: &str) -> String {
    format!("STATUS={}", line.replace(['\n', '\r'], " "))
}

/// Speaks the notify protocol from the frame loop.
pub struct ServicePlugin {
    /// Where and how often.
    pub config: ServiceConfig,
    /// With a window: the waiting slate counts as up.
    pub windowed: bool,
}

#[derive(Resource)]
struct Service {
    notifier: Notifier,
    ping_every: Option<Duration>,
    last_ping: Option<Instant>,
    ready: bool,
    updates: u32,
    windowed: bool,
    last_status: Option<(Instant, String)>,
    stopping: bool,
    /// `LUCID_TEST_FREEZE_AFTER_FRAMES`: the render loop hangs after this many frames, so
    /// tests can see the watchdog pings stop.
    freeze_after: Option<u64>,
}

impl Plugin for ServicePlugin {
    fn build(&self, app: &mut App) {
        let notifier = match Notifier::open(&self.config) {
            Ok(n) => n,
            Err(e) => {
                warn!(
                    "NOTIFY_SOCKET {}: {e}; not telling the service manager anything",
                    self.config.socket
                );
                return;
            }
        };
        app.insert_resource(Service {
            notifier,
            ping_every: self.config.ping_every(),
            last_ping: None,
            ready: false,
            updates: 0,
            windowed: self.windowed,
            last_status: None,
            stopping: false,
            freeze_after: std::env::var("LUCID_TEST_FREEZE_AFTER_FRAMES")
                .ok()
                .and_then(|v| v.parse().ok()),
        })
        .add_systems(Last, notify.after(crate::status::StatusSystems));
    }
}

/// Each frame: ready once, watchdog pings, the status line, stopping.
fn notify(
    mut service: ResMut<Service>,
    stats: Res<PlaybackStats>,
    latest: Res<LatestStatus>,
    lifecycle: Res<Lifecycle>,
    closed: Option<Res<crate::video::SourceClosed>>,
) {
    let now = Instant::now();
    service.updates = service.updates.saturating_add(1);
    let mut message = Vec::new();
    // Out of the schedule's hours at start, the show is up in its closed state.
    let up = stats.presented > 0
        || closed.is_some()
        || (service.windowed && service.updates >= SLATE_UPDATES);
    if up && !service.ready {
        service.ready = true;
        message.push("READY=1".to_string());
    }
    if let Some(every) = service.ping_every
        && service.last_ping.is_none_or(|t| now - t >= every)
    {
        service.last_ping = Some(now);
        message.push("WATCHDOG=1".to_string());
    }
    // The line is made at most once a second, and sent when it changed.
    let status_due = service
        .last_status
        .as_ref()
        .is_none_or(|(t, _)| now - *t >= STATUS_EVERY);
    if status_due && let Some(line) = latest.0.as_ref().map(|s| s.line()) {
        if service
            .last_status
            .as_ref()
            .is_none_or(|(_, last)| *last != line)
        {
            message.push(status_message(&line));
        }
        service.last_status = Some((now, line));
    }
    if lifecycle.stopping() && !service.stopping {
        service.stopping = true;
        message.push("STOPPING=1".to_string());
    }
    if !message.is_empty()
        && let Err(e) = service.notifier.send(&message.join("\n"))
    {
        debug!("NOTIFY_SOCKET: {e}");
    }
    if service
        .freeze_after
        .is_some_and(|n| stats.presented >= n && !lifecycle.stopping())
    {
        warn!("LUCID_TEST_FREEZE_AFTER_FRAMES reached: the render loop hangs on purpose");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn the_environment_says_where_and_how_often() {
        let c = ServiceConfig::from_vars(s("/run/systemd/notify"), s("4000000"), None, 7).unwrap();
        assert_eq!(c.watchdog, Some(Duration::from_secs(4)));
        assert_eq!(c.ping_every(), Some(Duration::from_secs(2)));
        let abstract_ = ServiceConfig::from_vars(s("@notify"), None, None, 7).unwrap();
        assert_eq!(
            (abstract_.socket.as_str(), abstract_.watchdog),
            ("@notify", None)
        );
        // The watchdog is another process's (a wrapper script's child, say).
        let theirs = ServiceConfig::from_vars(s("/n"), s("4000000"), s("8"), 7).unwrap();
        assert_eq!(theirs.watchdog, None);
        let ours = ServiceConfig::from_vars(s("/n"), s("4000000"), s("7"), 7).unwrap();
        assert!(ours.watchdog.is_some());
        // No manager, or nonsense.
        assert_eq!(ServiceConfig::from_vars(None, s("1"), None, 7), None);
        assert_eq!(ServiceConfig::from_vars(s("relative"), None, None, 7), None);
        assert_eq!(
            ServiceConfig::from_vars(s("/n"), s("zero"), None, 7)
                .unwrap()
                .watchdog,
            None
        );
    }

    #[test]
    fn a_status_is_one_line() {
        assert_eq!(status_message("a\nb\rc"), "STATUS=a b c");
    }

    #[test]
    fn messages_reach_a_listening_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        let config = ServiceConfig {
            socket: path.to_string_lossy().into_owned(),
            watchdog: None,
        };
        let n = Notifier::open(&config).unwrap();
        n.send("READY=1\nSTATUS=playing").unwrap();
        let mut buf = [0u8; 64];
        let got = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got], b"READY=1\nSTATUS=playing");
    }
}
