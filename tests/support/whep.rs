//! The independent WebRTC peer for the WHEP tests: `tests/peers/whep_peer.py` on aiortc,
//! in a Python environment the tests create themselves (once per machine, under
//! `~/.cache`), started on a free port of 127.0.0.1 and killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the peer needs, pinned so every machine tests against the same peer.
const PEER_PACKAGES: &[&str] = &["aiortc==1.16.0", "aiohttp==3.14.5"];

/// The Python that has aiortc: `LUCID_TEST_VENV`, or a venv under `~/.cache` made here
/// on first use (pip from PyPI, bounded to 10 minutes).
pub fn peer_python() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let venv = std::env::var_os("LUCID_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/lucid-test-venv")
        });
    let python = venv.join("bin/python");
    let ready = venv.join(format!("ready-{}", PEER_PACKAGES.join("+")));
    if ready.exists() {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = super::wait_with_limit(&mut child, Duration::from_secs(600));
        assert!(status.success(), "{what} failed ({status})");
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv (Debian: python3-venv)",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(PEER_PACKAGES),
        "pip install aiortc",
    );
    std::fs::write(&ready, b"").unwrap();
    python
}

/// A running peer and the events it printed.
pub struct WhepPeer {
    pub port: u16,
    child: Child,
    events: Arc<Mutex<Vec<serde_json::Value>>>,
    args: Vec<String>,
}

impl WhepPeer {
    /// Starts the peer with extra arguments (see the script's `--help`) on a free port.
    pub fn start(args: &[&str]) -> WhepPeer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port, args.iter().map(|s| s.to_string()).collect())
    }

    fn start_on(port: u16, args: Vec<String>) -> WhepPeer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/whep_peer.py");
        let mut child = Command::new(peer_python())
            .arg(script)
            .args(["--port", &port.to_string()])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the peer starts");
        let events = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let peer = WhepPeer {
            port,
            child,
            events,
            args,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while peer.count("listening") == 0 {
            assert!(Instant::now() < deadline, "the WHEP peer did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        peer
    }

    /// The WHEP endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/whep", self.port)
    }

    /// Events of one kind, in order.
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect()
    }

    /// Every event so far, a line each: for failure messages.
    pub fn events_text(&self) -> String {
        let events = self.events.lock().unwrap();
        events.iter().map(|e| format!("{e}\n")).collect()
    }

    /// How many events of one kind.
    pub fn count(&self, kind: &str) -> usize {
        self.events(kind).len()
    }

    /// Waits up to `limit` for an event; true when it came.
    pub fn wait_for(&self, kind: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.count(kind) == 0 {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Kills the peer (the server "crashes"); `restart` brings a new one up on the same port.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A fresh peer on the same port with the same arguments.
    pub fn restart(&mut self) -> WhepPeer {
        self.kill();
        Self::start_on(self.port, self.args.clone())
    }
}

impl Drop for WhepPeer {
    fn drop(&mut self) {
        self.kill();
    }
}
