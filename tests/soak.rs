//! Soak: a bounded live run across many segments, reconnects and resolution changes, with
//! Lucid's resident memory sampled throughout. Memory must stay flat.

mod support;

use std::time::{Duration, Instant};

use support::scripted::{ScriptedOrigin, make_segments};
use support::*;

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn memory_stays_flat_across_segments_reconnects_and_resolution_changes() {
    let dir = tempfile::tempdir().unwrap();
    let small = make_segments(dir.path(), "s", 0, 320, 180, 6);
    let large = make_segments(dir.path(), "l", 0, 640, 360, 6);
    // 48 one-second segments: the size changes every 6 (at a discontinuity) and the
    // broadcaster reconnects every 12.
    // LUCID_SOAK_BLOCKS makes it longer by hand (each block is 6 s); CI runs 8.
    let blocks: usize = std::env::var("LUCID_SOAK_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let mut entries = Vec::new();
    for block in 0..blocks {
        let bank = if block % 2 == 0 { &small } else { &large };
        for (i, e) in bank.iter().enumerate() {
            let mut e = e.clone();
            e.discontinuity = i == 0 && block > 0;
            e.new_session = i == 0 && block > 0 && block % 2 == 0;
            entries.push(e);
        }
    }
    let origin = ScriptedOrigin::start(entries);
    let mut child = lucid()
        .args([
            "--url",
            &origin.master_url(),
            "--no-preview",
            "--pipe",
            "y4m",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut bytes).unwrap();
        bytes
    });
    let log = collect_stderr(&mut child);
    let start = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60 + 10 * blocks as u64),
            "the soak is bounded"
        );
        if let Some(kib) = rss_kib(pid) {
            samples.push((start.elapsed().as_secs_f64(), kib));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let err = log.join().unwrap();
    let out = reader.join().unwrap();
    assert!(status.success(), "{err}");
    let y4m = Y4m::parse(&out);
    assert_eq!(
        (y4m.width, y4m.height),
        (320, 180),
        "outputs keep their first size"
    );
    assert!(
        y4m.frames.len() > 150 * blocks,
        "{} frames over {} s",
        y4m.frames.len(),
        6 * blocks
    );
    assert!(
        err.matches("new session").count() >= blocks / 2 - 1,
        "{err}"
    );
    // One texture set at start and one per size change: none per frame, none left over.
    let allocations = format!("{blocks} texture set(s) allocated");
    assert!(err.contains(&allocations), "{err}");

    // Allocator arenas and caches fill during the first ~15 s (in a 144 s run RSS then stays
    // within 1 MiB for the last 80 s), so compare the median after warm-up with the median
    // of the last 10 s; medians ignore the short spikes of a size change. The packet leak
    // this test found (~0.4 MiB/s here) adds ~10 MiB between the two windows.
    let end = samples.last().unwrap().0;
    let median = |from: f64, to: f64| {
        let mut v: Vec<u64> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, k)| *k)
            .collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let early = median(15.0, 25.0);
    let late = median(end - 10.0, end + 1.0);
    let timeline: Vec<String> = samples
        .iter()
        .step_by(20)
        .map(|(t, k)| format!("{t:.0}s:{}MiB", k / 1024))
        .collect();
    eprintln!(
        "soak RSS: median {early} KiB at 15-25 s, {late} KiB in the last 10 s of {end:.0} s; {}",
        timeline.join(" ")
    );
    assert!(
        late <= early + 6 * 1024,
        "memory grew from {early} KiB to {late} KiB across {} segments",
        6 * blocks
    );
}
