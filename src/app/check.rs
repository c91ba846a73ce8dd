//! `--check-effects`: every effect that compiles is also rendered, one show of its own per
//! effect (this same program, headless, on the built-in test pattern: a filter in the
//! chain, a generator as the source, a transition on the crossfader between the pattern
//! and a black canvas), so what the GPU refuses is found as well as what naga refuses.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::effects::EffectCatalog;

/// The check show's size: small, so hundreds of effects render in minutes on a CPU.
const SIZE: (u32, u32) = (320, 180);

/// How long one effect's show may take (start, compile, a few frames).
const LIMIT: Duration = Duration::from_secs(60);

/// Shows run at once.
const WORKERS: usize = 2;

/// One line per effect (`ok NAME`, `error NAME: reason`), then `N of M effects load`; and
/// how many failed. `log` gets progress lines.
pub fn check_effects(
    catalog: &EffectCatalog,
    log: &mut (dyn FnMut(&str) + Send),
) -> (String, usize) {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("lucid"));
    let entries: Vec<(String, Option<String>, Kind)> = catalog
        .entries
        .iter()
        .map(|(name, entry)| {
            let kind = entry.def.as_ref().map_or(Kind::Filter, |d| {
                if d.transition {
                    Kind::Transition
                } else if d.generator {
                    Kind::Generator
                } else {
                    Kind::Filter
                }
            });
            (
                name.clone(),
                entry.error.as_ref().map(|e| e.to_string()),
                kind,
            )
        })
        .collect();
    let results: Vec<Mutex<Option<Result<(), String>>>> =
        entries.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let progress = Mutex::new(log);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((name, error, kind)) = entries.get(i) else {
                        break;
                    };
                    let verdict = match error {
                        Some(e) => Err(e.clone()),
                        None => render(&exe, catalog.dir.as_deref(), name, *kind),
                    };
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(verdict);
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if let Ok(mut log) = progress.lock() {
                        log(&format!(
                            "checked {n} of {} effects ({name})",
                            entries.len()
                        ));
                    }
                }
            });
        }
    });
    let mut out = String::new();
    let mut failed = 0;
    for ((name, _, _), result) in entries.iter().zip(results) {
        match result.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(())) => out.push_str(&format!("ok {name}\n")),
            Some(Err(why)) => {
                failed += 1;
                out.push_str(&format!("error {name}: {why}\n"));
            }
            None => {
                failed += 1;
                out.push_str(&format!("error {name}: not checked\n"));
            }
        }
    }
    let total = entries.len();
    out.push_str(&format!("{} of {total} effects load\n", total - failed));
    (out, failed)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Filter,
    Generator,
    Transition,
}

/// Renders a few frames with the effect; `Err` says why it did not.
fn render(exe: &Path, dir: Option<&Path>, name: &str, kind: Kind) -> Result<(), String> {
    let mut cmd = Command::new(exe);
    cmd.args(["--no-preview", "--pipe", "rgba", "--duration", "0.3"])
        .args([
            "--width",
            &SIZE.0.to_string(),
            "--height",
            &SIZE.1.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        cmd.arg("--effects-dir").arg(dir);
    }
    match kind {
        Kind::Filter => cmd.args(["--effect", name]),
        Kind::Generator => cmd.args(["--url", &format!("isf:{name}")]),
        // A: the test pattern (the bottom source); B: a black canvas over it.
        Kind::Transition => cmd
            .args(["--layer", &format!("canvas:{}x{}:bus=b", SIZE.0, SIZE.1)])
            .args(["--transition", name, "--crossfade", "0.2"]),
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start a check show: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut bytes = 0usize;
        let mut buf = [0u8; 65536];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            bytes += n;
        }
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let (bytes, err) = (out.join().unwrap_or(0), err.join().unwrap_or_default());
    let frame = (SIZE.0 * SIZE.1 * 4) as usize;
    if let Some(line) = err.lines().find(|l| l.contains("the GPU rejected it")) {
        return Err(line
            .split_once("WARN ")
            .map_or(line, |(_, rest)| rest)
            .trim()
            .to_string());
    }
    match status {
        None => Err(format!("its show did not end within {} s", LIMIT.as_secs())),
        Some(s) if !s.success() => Err(err
            .lines()
            .find(|l| l.starts_with("error: "))
            .map_or_else(|| format!("its show failed ({s})"), str::to_string)),
        Some(_) if bytes < frame => Err("its show rendered no frame".into()),
        Some(_) => Ok(()),
    }
}
