//! What a person (or a monitoring script) can see while Lucid runs: one status line on
//! stderr, rewritten in place on a terminal, and `--stats-json` lines, one per second.

use std::io::{BufWriter, IsTerminal, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};

use bevy::prelude::*;
use serde::Serialize;
use tracing::warn;

use crate::error::Result;
use crate::lifecycle::Lifecycle;
use crate::output::{OutputError, OutputStats};
use crate::video::{PendingStream, PlaybackStats, StreamDescription, VideoFeed, VideoTexture};

/// How often the snapshot is taken (and the JSON line written).
const EVERY: Duration = Duration::from_secs(1);
/// Without a terminal, a plain line this often (a line a second would drown the log).
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// Playback state as the status line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaybackState {
    /// The stream is not open yet (connecting, or not live yet).
    Waiting,
    /// Opened, no frame shown yet.
    Buffering,
    /// Frames arrive on time.
    Playing,
    /// No new frame for longer than a few frame durations.
    Stalled,
    /// Stopping: end of stream, `--duration`, a signal or an error.
    Ended,
    /// Out of the schedule's hours: the sources are closed on purpose.
    Closed,
}

/// How far an offline render is.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Progress {
    /// Share of the input's duration rendered, 0..100.
    pub percent: f64,
    /// Stream seconds rendered per wall second.
    pub speed: f64,
    /// Seconds left at this speed.
    pub eta_s: Option<f64>,
}

impl Progress {
    /// From the stream time rendered, the input's duration and the wall time it took.
    pub fn new(done: Duration, total: Duration, elapsed: Duration) -> Progress {
        let done_s = done.as_secs_f64().min(total.as_secs_f64());
        let speed = done_s / elapsed.as_secs_f64().max(1e-3);
        let left = total.as_secs_f64() - done_s;
        Progress {
            percent: 100.0 * done_s / total.as_secs_f64().max(1e-9),
            speed,
            eta_s: (speed > 0.0).then(|| left / speed),
        }
    }
}

/// One status sample: the status line and one `--stats-json` object.
#[derive(Debug, Clone, Serialize)]
pub struct StatusSnapshot {
    /// Seconds since Lucid started.
    pub uptime_s: f64,
    /// Playback state.
    pub state: PlaybackState,
    /// The input.
    pub source: String,
    /// True when a finite input renders offline into files (every frame, not paced).
    pub offline: bool,
    /// How far an offline render is, when the input's duration is known.
    pub progress: Option<Progress>,
    /// The network protocol playing: "webrtc" or "hls" (absent for files and the pattern).
    pub protocol: Option<String>,
    /// Why that protocol, when it was not the first choice ("HLS: WebRTC answered 406").
    pub protocol_why: Option<String>,
    /// WebRTC figures: RTT, jitter, loss, keyframe requests, the jitter buffer's target.
    pub webrtc: Option<crate::source::whep::WebRtcSnapshot>,
    /// The HLS rendition played, if any.
    pub rendition: Option<String>,
    /// Which decoder runs.
    pub decoder: String,
    /// Current video size.
    pub width: u32,
    /// Current video size.
    pub height: u32,
    /// Frames presented per second over the last interval.
    pub fps: f64,
    /// Frames presented in total.
    pub presented: u64,
    /// Frames skipped by the presentation clock (late, or dropped to catch up).
    pub skipped: u64,
    /// Frames dropped in the decoder queue.
    pub dropped: u64,
    /// Source stalls.
    pub stalls: u64,
    /// Times frames were dropped to catch up with the live edge.
    pub catch_ups: u64,
    /// Latency behind the live edge, seconds (live HLS).
    pub latency_s: Option<f64>,
    /// The latency being steered toward, seconds (live HLS).
    pub latency_target_s: Option<f64>,
    /// The video pass per frame (YUV planes to the canvas), milliseconds (GPU when the
    /// device has timestamps, like the effect times).
    pub video_pass_ms: Option<f64>,
    /// The outputs' RGB to YUV pass per frame, milliseconds.
    pub yuv_pass_ms: Option<f64>,
    /// Effect chain time per frame, milliseconds (GPU when the device has timestamps).
    pub effects_ms: Option<f64>,
    /// Each effect pass, milliseconds, keyed "index_name".
    pub effect_passes_ms: std::collections::BTreeMap<String, f64>,
    /// True when the effect times are GPU timestamps (else CPU time recording them).
    pub effects_gpu: bool,
    /// CPU time building the overlay per frame (mean), milliseconds; absent headless.
    pub ui_ms: Option<f64>,
    /// Each output (`record`, `pipe`): frames written and dropped, counted apart.
    pub outputs: std::collections::BTreeMap<String, OutputSnapshot>,
    /// The sound the outputs carry, when the show has some.
    pub audio: Option<AudioSnapshot>,
    /// The Daydream stream being steered, if any.
    pub daydream: Option<crate::daydream::plugin::DaydreamReport>,
    /// The show's tempo (`--bpm` or tapped), beats per minute.
    pub bpm: Option<f64>,
    /// OSC and MIDI messages received, applied and rejected (with `--osc` or `--midi`).
    pub control: Option<crate::show::state::ControlReport>,
    /// Each `--layer`, bottom first: source, state, frames shown, loops, error.
    pub layers: Vec<crate::compositor::layers::LayerReport>,
    /// With `--fps`: output ticks the app was too late for (skipped, not made up).
    pub output_ticks_missed: Option<u64>,
    /// The output clock's rate, when one runs (`--fps`, or offline the fastest layer's);
    /// absent, the `--url` video's frames set the pace.
    pub output_fps: Option<f64>,
    /// With `--schedule`: `on` in hours, `off` out of them.
    pub schedule: Option<&'static str>,
    /// With `--schedule`: when it next opens or closes, RFC 3339 in local time.
    pub schedule_next_change: Option<String>,
}

/// The sound in a status sample.
#[derive(Debug, Clone, Serialize)]
pub struct AudioSnapshot {
    /// Whose sound: `url` (the --url source), `layer N` (`--audio-from N`), or
    /// `audio-in` where the show has none and the analysis listens to `--audio-in`.
    pub source: String,
    /// The source's codec.
    pub codec: String,
    /// The source's sample rate (the outputs carry 48 kHz).
    pub sample_rate: u32,
    /// The source's channels (the outputs carry stereo).
    pub channels: u16,
    /// RMS level of the sound handed to the outputs most recently, 0..1.
    pub level: f32,
    /// Silence the outputs' sound got where the source's had gaps, in milliseconds (the
    /// most any output got).
    pub gaps_ms: f64,
    /// Chunks of sound lost on the way (queues full on a live source, undecodable packets).
    pub lost: u64,
    /// What the analysis measured at the last frame (absent before it has measured).
    pub analysis: Option<AnalysisSnapshot>,
    /// `--audio-out`: what the device has played.
    pub out: Option<PlaybackSnapshot>,
    /// With `--audio-out`: how far the sound the device plays is behind the picture on
    /// screen, in milliseconds (negative: ahead), at its last buffer. Absent without a
    /// device: the outputs place every sample by its timestamp, as the picture's.
    pub av_offset_ms: Option<f64>,
}

/// `--audio-out` in a status sample.
#[derive(Debug, Clone, Serialize)]
pub struct PlaybackSnapshot {
    /// The playback device.
    pub device: String,
    /// Sound handed to the device, in milliseconds.
    pub played_ms: f64,
    /// Samples played as silence because theirs had not come (a stall, the start).
    pub underruns: u64,
    /// Jumps made to stay on the picture (more than 40 ms apart: a stall, a catch-up).
    pub jumps: u64,
}

/// The sound's analysis in a status sample (what effects get as `lucid.audio_*`).
#[derive(Debug, Clone, Serialize)]
pub struct AnalysisSnapshot {
    /// What it listens to: `url` (the show's sound), `file` or `device` (`--audio-in`).
    pub source: &'static str,
    /// CPU milliseconds the analysis takes per frame, on average.
    pub cost_ms: f64,
    /// Level, 0..1 over -60..0 dBFS.
    pub level: f32,
    /// Bass, low mids, high mids, treble, 0..1.
    pub bands: [f32; 4],
    /// Hits (onsets) so far.
    pub onsets: u64,
    /// The tempo the hits keep, once they keep one.
    pub bpm: Option<f64>,
}

/// One output's state in a status sample.
#[derive(Debug, Clone, Serialize)]
pub struct OutputSnapshot {
    /// `live`, `reconnecting` (a network output that is down) or `finished`.
    pub state: crate::output::OutputPhase,
    /// Frames written.
    pub written: u64,
    /// Frames this output dropped: it could not keep up, or its connection was down.
    pub dropped: u64,
    /// Bits a second written over the last second (encoded outputs; 0 for the others).
    pub bitrate: f64,
    /// The H.264 encoder, for encoded outputs.
    pub encoder: Option<&'static str>,
    /// Times a network output connected again after losing its connection.
    pub reconnects: u64,
    /// Why a network output is down, or last went down.
    pub error: Option<String>,
}

impl OutputSnapshot {
    /// The status line's words for this output: only what is worth a glance (a state
    /// other than live, a bitrate, drops).
    fn words(&self, name: &str) -> String {
        let mut words = vec![name.to_string()];
        if self.state != crate::output::OutputPhase::Live {
            words.push(format!("{:?}", self.state));
        }
        if self.bitrate > 0.0 {
            words.push(format!("{:.1} mb/s", self.bitrate / 1e6));
        }
        if self.dropped > 0 {
            words.push(format!("{} dropped", self.dropped));
        }
        words.join(" ")
    }
}

/// The newest status sample, for the overlay.
#[derive(Resource, Debug, Clone, Default)]
pub struct LatestStatus(pub Option<StatusSnapshot>);

impl StatusSnapshot {
    /// The human form, one line.
    pub fn line(&self) -> String {
        let latency = match (self.latency_s, self.latency_target_s) {
            (Some(l), Some(t)) => format!(" | latency {l:.2}s (target {t:.1}s)"),
            _ => String::new(),
        };
        let progress = self
            .progress
            .map(|p| {
                let eta = p.eta_s.map_or("-".into(), |e| format!("{e:.0}s"));
                format!("render {:.1}% {:.2}x eta {eta} | ", p.percent, p.speed)
            })
            .unwrap_or_default();
        let protocol = match (&self.protocol, &self.protocol_why) {
            (_, Some(why)) => format!("{why} | "),
            (Some(p), None) => format!("{p} | "),
            _ => String::new(),
        };
        let webrtc = self
            .webrtc
            .as_ref()
            .map(|w| {
                format!(
                    " | rtt {} jitter {:.0}ms loss {:.1}% buffer {:.0}ms pli {}",
                    w.rtt_ms.map_or("-".into(), |r| format!("{r:.0}ms")),
                    w.jitter_ms,
                    w.packet_loss * 100.0,
                    w.jitter_buffer_ms,
                    w.keyframe_requests
                )
            })
            .unwrap_or_default();
        let daydream = self
            .daydream
            .as_ref()
            .map(|d| {
                let output = match (d.output_ready, d.output_fps) {
                    (true, Some(fps)) => format!("live {fps:.0} fps"),
                    (true, None) => "live".into(),
                    (false, _) => "warming up".into(),
                };
                format!(
                    " | daydream {} {output}, {} changes sent",
                    d.stream, d.patches_sent
                )
            })
            .unwrap_or_default();
        let schedule = self
            .schedule
            .map(|s| {
                let until = self.schedule_next_change.as_deref().unwrap_or_default();
                format!(" | schedule {s} until {until}")
            })
            .unwrap_or_default();
        let outputs: String = self
            .outputs
            .iter()
            .map(|(name, o)| format!(" | {}", o.words(name)))
            .chain(
                self.layers
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!(" | layer{} {:?}", i + 1, l.state)),
            )
            .collect();
        format!(
            "{}{}{:?}{} | {}x{}{} | {:.1} fps | {} shown, {} skipped, {} dropped, {} stalls{}{}{}{} | {}",
            progress,
            protocol,
            self.state,
            schedule,
            self.width,
            self.height,
            self.rendition
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default(),
            self.fps,
            self.presented,
            self.skipped,
            self.dropped,
            self.stalls,
            latency,
            webrtc,
            daydream,
            outputs,
            self.decoder
        )
        .to_lowercase()
    }
}

/// JSON lines waiting for the stats thread; beyond this they are dropped (and counted)
/// rather than holding up the frame loop.
const STATS_QUEUE: usize = 64;
/// How long the end of a run waits for the stats thread to write its last lines.
const STATS_FINISH_GRACE: Duration = Duration::from_millis(500);

/// The `--stats-json` file, written on a thread of its own: a slow disk, a full pipe or a
/// FIFO nobody reads never holds up rendering, a stop or the exit.
pub struct StatsFile {
    tx: Sender<String>,
    handle: JoinHandle<()>,
    dropped: Arc<AtomicU64>,
}

impl StatsFile {
    /// Opens `path` for appending (created if missing). A regular file is opened here, so
    /// an unwritable path fails at start; a FIFO is opened by the thread, since opening one
    /// waits for its reader.
    pub fn open(path: &Path, lifecycle: &Lifecycle) -> Result<StatsFile> {
        let fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| OutputError::new(path, "opening the stats file", e))
        };
        let early = if fifo { None } else { Some(open(path)?) };
        let late_path = path.to_path_buf();
        let (tx, rx) = bounded::<String>(STATS_QUEUE);
        let shown = path.display().to_string();
        let handle = lifecycle.spawn("lucid-stats", move || {
            let file = match early {
                Some(f) => f,
                None => match open(&late_path) {
                    Ok(f) => f,
                    Err(e) => return warn!("--stats-json: {e}"),
                },
            };
            let mut out = BufWriter::new(file);
            for line in rx {
                // One line at a time, flushed: a reader tailing the file sees it at once.
                if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                    return warn!("--stats-json {shown}: {e}; no more stats will be written");
                }
            }
        });
        Ok(StatsFile {
            tx,
            handle,
            dropped: Arc::default(),
        })
    }

    /// Waits briefly for the last lines to be written; a file nobody reads is left behind.
    pub fn finish(self) {
        let StatsFile {
            tx,
            handle,
            dropped,
        } = self;
        drop(tx);
        if !crate::lifecycle::join_by(handle, Instant::now() + STATS_FINISH_GRACE) {
            warn!("--stats-json: the file is not being read; leaving it behind");
        }
        let dropped = dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            warn!("--stats-json: {dropped} line(s) dropped: the file could not keep up");
        }
    }
}

/// Writes the status line and, when asked, the JSON lines.
pub struct StatusPlugin {
    json: Option<(Sender<String>, Arc<AtomicU64>)>,
}

impl StatusPlugin {
    /// `stats_json`: where JSON lines go, if anywhere.
    pub fn new(stats_json: Option<&StatsFile>) -> Self {
        StatusPlugin {
            json: stats_json.map(|f| (f.tx.clone(), f.dropped.clone())),
        }
    }
}

#[derive(Resource)]
struct StatusOutput {
    json: Option<(Sender<String>, Arc<AtomicU64>)>,
    tty: bool,
    started: Instant,
    last: Option<(Instant, u64)>,
    last_plain: Option<Instant>,
    final_written: bool,
}

impl Plugin for StatusPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(StatusOutput {
            json: self.json.clone(),
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            last_plain: None,
            final_written: false,
        })
        .init_resource::<LatestStatus>()
        .add_systems(Last, report_status.in_set(StatusSystems));
    }
}

/// Where the status is made (in `Last`): [`LatestStatus`] is fresh after it.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusSystems;

/// The show's parts that report into the status: pacing, Daydream, tempo, OSC.
#[derive(bevy::ecs::system::SystemParam)]
struct ShowReports<'w> {
    pacing: Res<'w, crate::video::Pacing>,
    daydream: Option<Res<'w, crate::daydream::DaydreamState>>,
    tempo: Option<Res<'w, crate::effects::ShowTempo>>,
    control: Option<Res<'w, crate::show::state::ControlReport>>,
    layers: Option<Res<'w, crate::compositor::layers::Layers>>,
    ticks: Option<Res<'w, crate::video::OutputTicks>>,
    sound: Option<Res<'w, crate::sound::SoundReport>>,
    analysis: Option<Res<'w, crate::sound::AnalysisReport>>,
    playback: Option<Res<'w, crate::sound::PlaybackState>>,
    heard: Option<Res<'w, crate::sound::ShowSound>>,
    schedule: Option<Res<'w, crate::schedule::plugin::ScheduleStatus>>,
    closed: Option<Res<'w, crate::video::SourceClosed>>,
}

#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn report_status(
    mut out: ResMut<StatusOutput>,
    stats: Res<PlaybackStats>,
    feed: Option<Res<VideoFeed>>,
    stream: Option<Res<StreamDescription>>,
    pending: Option<Res<PendingStream>>,
    texture: Option<Res<VideoTexture>>,
    lifecycle: Res<Lifecycle>,
    timings: Option<Res<crate::effects::EffectTimings>>,
    ui: Option<Res<crate::show::state::UiTiming>>,
    outputs: Option<Res<OutputStats>>,
    mut latest: ResMut<LatestStatus>,
    show: ShowReports,
) {
    let now = Instant::now();
    let (since, count) = *out.last.get_or_insert((now, stats.presented));
    let stopping = lifecycle.stopping();
    // A stream that never opened has no final report to give (the error says why).
    if (now - since < EVERY && !stopping) || out.final_written || (stopping && stream.is_none()) {
        return;
    }
    out.final_written = stopping;
    let elapsed = (now - since).as_secs_f64().max(1e-3);
    let fps = (stats.presented - count) as f64 / elapsed;
    out.last = Some((now, stats.presented));
    let frame_time = 1.0 / stream.as_ref().and_then(|s| s.0.frame_rate).unwrap_or(30.0);
    let state = if lifecycle.stopping() {
        PlaybackState::Ended
    } else if show.closed.is_some() {
        PlaybackState::Closed
    } else if pending.is_some() {
        PlaybackState::Waiting
    } else if stats.presented == 0 {
        PlaybackState::Buffering
    } else if stats
        .last_frame_at
        .is_some_and(|t| (now - t).as_secs_f64() > (3.0 * frame_time).max(0.5))
    {
        PlaybackState::Stalled
    } else {
        PlaybackState::Playing
    };
    let size = texture.map(|t| t.size).unwrap_or_default();
    let info = stream.map(|s| s.0.clone());
    let snap = StatusSnapshot {
        uptime_s: (now - out.started).as_secs_f64(),
        state,
        source: info.as_ref().map(|i| i.source.clone()).unwrap_or_default(),
        rendition: info.as_ref().and_then(|i| i.rendition.clone()),
        offline: show.pacing.offline,
        progress: match (show.pacing.offline, info.as_ref().and_then(|i| i.duration)) {
            (true, Some(total)) => stats
                .pts_span
                .zip(stats.first_frame_at)
                .map(|((first, last), started)| Progress::new(last - first, total, now - started)),
            _ => None,
        },
        protocol: info.as_ref().and_then(|i| i.protocol.map(str::to_string)),
        protocol_why: info.as_ref().and_then(|i| i.protocol_why.clone()),
        webrtc: info
            .as_ref()
            .and_then(|i| i.webrtc.as_ref().map(|w| w.snapshot())),
        decoder: info.map(|i| i.decoder).unwrap_or_default(),
        width: size.x,
        height: size.y,
        fps,
        presented: stats.presented,
        skipped: stats.skipped,
        dropped: feed.map(|f| f.dropped()).unwrap_or(0),
        stalls: stats.stalls,
        catch_ups: stats.catch_ups,
        latency_s: stats.latency.map(|d| d.as_secs_f64()),
        latency_target_s: stats.latency_target.map(|d| d.as_secs_f64()),
        video_pass_ms: timings.as_ref().and_then(|t| t.video_ms),
        yuv_pass_ms: timings.as_ref().and_then(|t| t.yuv_ms),
        effects_ms: timings.as_ref().and_then(|t| t.chain_ms),
        effect_passes_ms: timings
            .as_ref()
            .map(|t| t.passes.iter().cloned().collect())
            .unwrap_or_default(),
        effects_gpu: timings.as_ref().is_some_and(|t| t.gpu),
        ui_ms: ui.filter(|u| u.frames > 0).map(|u| u.mean_ms),
        outputs: outputs
            .as_ref()
            .map(|o| {
                o.0.iter()
                    .map(|(name, c)| {
                        let snap = OutputSnapshot {
                            state: c.phase(),
                            written: c.written.load(Ordering::Relaxed),
                            dropped: c.dropped.load(Ordering::Relaxed),
                            bitrate: c.bitrate(now),
                            encoder: c.encoder(),
                            reconnects: c.reconnects(),
                            error: c.error(),
                        };
                        (name.to_string(), snap)
                    })
                    .collect()
            })
            .unwrap_or_default(),
        audio: audio_snapshot(
            show.sound
                .as_deref()
                .map(|r| (r, r.source.as_str()))
                .or(show.analysis.as_deref().map(|a| (&a.0, "audio-in"))),
            show.heard.as_deref(),
            show.playback.as_deref(),
            outputs.as_deref(),
        ),
        daydream: show.daydream.and_then(|d| d.report()),
        bpm: show.tempo.map(|t| t.0.bpm),
        control: show.control.map(|c| c.clone()),
        layers: show.layers.map(|l| l.reports()).unwrap_or_default(),
        output_ticks_missed: show.ticks.as_ref().map(|t| t.missed),
        output_fps: show.ticks.map(|t| t.fps()),
        schedule: show.schedule.as_ref().map(|s| s.state()),
        schedule_next_change: show.schedule.and_then(|s| s.next_change_rfc3339()),
    };
    latest.0 = Some(snap.clone());
    if let Some((tx, dropped)) = &out.json
        && let Ok(mut line) = serde_json::to_string(&snap)
    {
        line.push('\n');
        if tx.try_send(line).is_err() {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut err = std::io::stderr().lock();
    if out.tty {
        // In place: the logger clears this line before printing a log line over it.
        let _ = write!(err, "\r\x1b[2K{}", snap.line());
        if lifecycle.stopping() {
            let _ = writeln!(err);
        }
    } else if out.last_plain.is_none_or(|t| now - t >= PLAIN_EVERY) || lifecycle.stopping() {
        out.last_plain = Some(now);
        let _ = writeln!(err, "status: {}", snap.line());
    }
}

/// The show's sound, for the stats.
fn audio_snapshot(
    report: Option<(&crate::sound::SoundReport, &str)>,
    heard: Option<&crate::sound::ShowSound>,
    playback: Option<&crate::sound::PlaybackState>,
    outputs: Option<&OutputStats>,
) -> Option<AudioSnapshot> {
    let (report, source) = report?;
    let filled = outputs
        .into_iter()
        .flat_map(|o| &o.0)
        .map(|(_, o)| o.audio_filled.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0);
    Some(AudioSnapshot {
        source: source.to_string(),
        codec: report.info.codec.clone(),
        sample_rate: report.info.sample_rate,
        channels: report.info.channels,
        level: report.level(),
        gaps_ms: filled as f64 * 1000.0 / f64::from(crate::decode::audio::SAMPLE_RATE),
        lost: report.lost(),
        analysis: heard.filter(|h| h.heard).map(|h| AnalysisSnapshot {
            source: h.source,
            cost_ms: h.cost_ms,
            level: h.level,
            bands: h.bands,
            onsets: h.onsets,
            bpm: h.bpm,
        }),
        out: playback.map(|p| PlaybackSnapshot {
            device: p.0.device.clone(),
            played_ms: p.0.played.load(Ordering::Relaxed) as f64 * 1000.0
                / f64::from(crate::decode::audio::SAMPLE_RATE),
            underruns: p.0.underruns.load(Ordering::Relaxed),
            jumps: p.0.jumps.load(Ordering::Relaxed),
        }),
        av_offset_ms: playback.and_then(|p| p.0.av_offset_ms()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_says_how_far_how_fast_and_how_long_still() {
        let p = Progress::new(
            Duration::from_secs(3),
            Duration::from_secs(12),
            Duration::from_secs(1),
        );
        assert_eq!(p.percent, 25.0);
        assert_eq!(p.speed, 3.0);
        assert_eq!(p.eta_s, Some(3.0));
        let done = Progress::new(
            Duration::from_secs(13),
            Duration::from_secs(12),
            Duration::from_secs(6),
        );
        assert_eq!(done.percent, 100.0);
        assert_eq!(done.eta_s, Some(0.0));
        assert_eq!(
            Progress::new(Duration::ZERO, Duration::from_secs(1), Duration::ZERO).eta_s,
            None
        );
    }
}
