//! The status as Prometheus' text format (version 0.0.4): `# HELP` and `# TYPE` for every
//! metric, counters ending in `_total`. Pure: from a [`StatusSnapshot`] to text.

use std::fmt::Write as _;

use crate::output::OutputPhase;
use crate::status::StatusSnapshot;

/// The text `GET /metrics` answers.
pub fn render(s: &StatusSnapshot) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: f64| vec![(String::new(), v)];
    metric(
        "lucid_frames_shown_total",
        "counter",
        "Frames presented.",
        &one(s.presented as f64),
    );
    metric(
        "lucid_frames_dropped_total",
        "counter",
        "Frames not shown: skipped by the presentation clock, or dropped in the decode queue.",
        &[
            ("{where=\"clock\"}".into(), s.skipped as f64),
            ("{where=\"queue\"}".into(), s.dropped as f64),
        ],
    );
    metric(
        "lucid_fps",
        "gauge",
        "Frames presented per second over the last interval.",
        &one(s.fps),
    );
    metric(
        "lucid_latency_seconds",
        "gauge",
        "Latency behind the live edge (live HLS; absent otherwise).",
        &s.latency_s.map(one).unwrap_or_default(),
    );
    metric(
        "lucid_stalls_total",
        "counter",
        "Times the source stalled.",
        &one(s.stalls as f64),
    );
    let outputs: Vec<(String, f64)> = s
        .outputs
        .iter()
        .map(|(name, o)| {
            let up = matches!(o.state, OutputPhase::Live);
            (
                format!("{{output=\"{}\"}}", escape(name)),
                f64::from(u8::from(up)),
            )
        })
        .collect();
    metric(
        "lucid_output_up",
        "gauge",
        "1 while an output is writing, 0 while it connects, reconnects, has finished or failed.",
        &outputs,
    );
    let reconnects = s.outputs.values().map(|o| o.reconnects).sum::<u64>()
        + s.webrtc.as_ref().map_or(0, |w| w.reconnects);
    metric(
        "lucid_reconnects_total",
        "counter",
        "Reconnections: network outputs, and the WebRTC source.",
        &one(reconnects as f64),
    );
    metric(
        "lucid_uptime_seconds",
        "gauge",
        "Seconds since Lucid started.",
        &one(s.uptime_s),
    );
    out
}

/// A label value with Prometheus' escapes.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
