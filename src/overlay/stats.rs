//! The overlay's read-outs: the stream, playback, outputs and control figures, and where
//! each frame's time goes.

use bevy::prelude::*;
use bevy_egui::egui;

use crate::effects::EffectTimings;
use crate::output::OutputPhase;
use crate::show::state::UiTiming;
use crate::sound::{ShowSound, SoundReport};
use crate::status::LatestStatus;
use crate::video::StreamDescription;

pub(super) fn stats_section(
    ui: &mut egui::Ui,
    status: &LatestStatus,
    stream: Option<&StreamDescription>,
    sound: Option<(&SoundReport, &ShowSound)>,
    render_fps: f64,
) {
    egui::CollapsingHeader::new("Stream")
        .default_open(true)
        .show(ui, |ui| {
            let Some(s) = &status.0 else {
                ui.label("connecting...");
                return;
            };
            egui::Grid::new("stats").num_columns(2).show(ui, |ui| {
                let mut row = |k: &str, v: String| {
                    ui.label(k);
                    // Long values (decoder reasons, URLs) are cut, not allowed to widen the
                    // overlay over the picture; hovering shows them whole.
                    ui.add(egui::Label::new(&v).truncate()).on_hover_text(v);
                    ui.end_row();
                };
                row("state", format!("{:?}", s.state).to_lowercase());
                row("source", s.source.clone());
                match (&s.protocol, &s.protocol_why) {
                    (_, Some(why)) => row("protocol", why.clone()),
                    (Some(p), None) => row("protocol", p.clone()),
                    _ => {}
                }
                if let Some(w) = &s.webrtc {
                    let rtt = w.rtt_ms.map_or("-".into(), |r| format!("{r:.0} ms"));
                    row(
                        "webrtc",
                        format!(
                            "rtt {rtt}, jitter {:.0} ms, loss {:.1}%, buffer {:.0} ms, {} PLI, {} reconnects",
                            w.jitter_ms,
                            w.packet_loss * 100.0,
                            w.jitter_buffer_ms,
                            w.keyframe_requests,
                            w.reconnects
                        ),
                    );
                }
                if let Some(r) = &s.rendition {
                    row("rendition", r.clone());
                }
                row("resolution", format!("{}x{}", s.width, s.height));
                let nominal = stream
                    .and_then(|d| d.0.frame_rate)
                    .map(|r| format!(" (stream {r:.2})"))
                    .unwrap_or_default();
                row("input fps", format!("{:.1}{nominal}", s.fps));
                row("render fps", format!("{render_fps:.0}"));
                row(
                    "dropped",
                    format!("{} queue, {} late", s.dropped, s.skipped),
                );
                row("decode", s.decoder.clone());
                if let Some(l) = s.latency_s {
                    let target = s
                        .latency_target_s
                        .map(|t| format!(" (target {t:.1} s)"))
                        .unwrap_or_default();
                    row("latency", format!("{l:.2} s{target}"));
                }
                for (name, o) in &s.outputs {
                    let mut text = format!(
                        "{}, {} written, {} dropped",
                        format!("{:?}", o.state).to_lowercase(),
                        o.written,
                        o.dropped
                    );
                    if o.bitrate > 0.0 {
                        text += &format!(", {:.1} Mb/s", o.bitrate / 1e6);
                    }
                    if let Some(e) = o.encoder {
                        text += &format!(", {e}");
                    }
                    if o.reconnects > 0 {
                        text += &format!(", {} reconnects", o.reconnects);
                    }
                    if let Some(err) = o.error.as_ref().filter(|_| o.state != OutputPhase::Live) {
                        text += &format!(" ({err})");
                    }
                    row(&format!("output {name}"), text);
                }
                if let Some((sound, heard)) = sound {
                    let i = &sound.info;
                    let lost = match sound.lost() {
                        0 => String::new(),
                        n => format!(", {n} chunks lost"),
                    };
                    row(
                        "sound",
                        format!("{} {} Hz, {} ch{lost}", i.codec, i.sample_rate, i.channels),
                    );
                    if heard.heard {
                        let [bass, low, high, treble] = heard.bands;
                        row(
                            "bands",
                            format!("bass {bass:.2}  low {low:.2}  high {high:.2}  treble {treble:.2}"),
                        );
                        let tempo = heard
                            .bpm
                            .map_or("no tempo yet".into(), |b| format!("{b:.1} bpm"));
                        row("hits", format!("{} ({tempo})", heard.onsets));
                    }
                    // Read each frame, not from the once-a-second status: a meter that
                    // moves with the music.
                    // The analysis' level (the loudest of the frame's windows) when it has
                    // measured, else the last chunk's RMS: a short hit still moves the bar.
                    let db: f32 = if heard.heard {
                        heard.level * 60.0 - 60.0
                    } else {
                        20.0 * sound.level().max(1e-6).log10()
                    };
                    ui.label("level");
                    ui.add(
                        egui::ProgressBar::new(((db + 60.0) / 60.0).clamp(0.0, 1.0))
                            .text(format!("{db:.0} dBFS")),
                    );
                    ui.end_row();
                }
            });
        });
}

pub(super) fn timing_section(
    ui: &mut egui::Ui,
    effects: &EffectTimings,
    ui_timing: &UiTiming,
    stream: Option<&StreamDescription>,
) {
    egui::CollapsingHeader::new("Timing")
        .default_open(true)
        .show(ui, |ui| {
            let budget = 1e3 / stream.and_then(|s| s.0.frame_rate).unwrap_or(30.0);
            let clock = if effects.gpu { "GPU" } else { "CPU" };
            match effects.chain_ms {
                Some(ms) => {
                    let text = format!("effects: {ms:.2} ms {clock} (frame budget {budget:.1} ms)");
                    if ms > budget {
                        ui.colored_label(
                            egui::Color32::from_rgb(255, 90, 90),
                            format!("{text} - TOO SLOW"),
                        );
                    } else {
                        ui.label(text);
                    }
                }
                None => {
                    ui.label("effects: none running");
                }
            }
            for (name, ms) in &effects.passes {
                ui.monospace(format!("  {name:<18} {ms:7.2} ms"));
            }
            ui.label(format!(
                "overlay: {:.2} ms CPU (max {:.2})",
                ui_timing.mean_ms, ui_timing.max_ms
            ));
        });
}
