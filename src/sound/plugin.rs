//! The Bevy side of the sound: when the stream opens, the bus starts with every tap the
//! outputs registered and one for the analysis; each update the analysis takes what came;
//! at each presented frame it measures the windows up to the frame's stream time and
//! publishes [`ShowSound`] (effects order it among their inputs). Offline, presentation waits for the sound up to the next frame,
//! so a render measures the same sound at the same frames on any machine.

use std::sync::Arc;

use bevy::prelude::*;
use crossbeam_channel::{Receiver, TryRecvError, bounded};

use super::analysis::{Analyzer, Measures, RATE, SPECTRUM_BINS, TempoTracker};
use super::bus::{self, SoundReport, SoundTap, TAP_QUEUE};
use super::device::PlaybackReport;
use super::playback::PresentationClock;
use crate::decode::audio::sample_index;
use crate::decode::{AudioChunk, AudioFeed};
use crate::lifecycle::Lifecycle;
use crate::video::{FramePresented, Pacing, StreamReady, VideoFeed, VideoSystems};

/// How long an onset's pulse (`lucid.audio_onset`) takes to fall from 1 to 0.
pub const ONSET_PULSE: f64 = 0.15;

/// Ordering of the sound's systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub enum SoundSystems {
    /// The bus starts: outputs register their taps in [`SoundTaps`] before it.
    Start,
    /// [`ShowSound`] is measured for the frame just presented.
    Analyze,
}

/// Taps the outputs register before the bus starts.
#[derive(Resource, Default)]
pub struct SoundTaps(pub Vec<SoundTap>);

/// The sound at the frame being presented: what effects, mappings and feedback read.
/// Level, bands and spectrum are the most each reached over the windows since the last
/// frame.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct ShowSound {
    /// The show has sound and it has been measured.
    pub heard: bool,
    /// Level, 0..1 (-60 dBFS to full scale).
    pub level: f32,
    /// Bass, low mids, high mids, treble, 0..1.
    pub bands: [f32; 4],
    /// Log-spaced spectrum, 20 Hz-20 kHz, 0..1 a bin.
    pub spectrum: [f32; SPECTRUM_BINS],
    /// A hit started since the previous frame.
    pub onset: bool,
    /// 1 at a hit, falling to 0 over [`ONSET_PULSE`].
    pub pulse: f32,
    /// Hits so far.
    pub onsets: u64,
    /// The tempo the hits keep, once they keep one.
    pub bpm: Option<f64>,
    /// Stream seconds (the show's) of the latest hit on that tempo's beat.
    pub beat_at: Option<f64>,
    /// Stream seconds of this frame.
    pub time: f64,
    /// What is listened to: `url` (the show's sound), `file` or `device` (`--audio-in`).
    pub source: &'static str,
    /// CPU milliseconds the analysis took per frame, on average over the run.
    pub cost_ms: f64,
}

impl Default for ShowSound {
    fn default() -> Self {
        ShowSound {
            heard: false,
            level: 0.0,
            bands: [0.0; 4],
            spectrum: [0.0; SPECTRUM_BINS],
            onset: false,
            pulse: 0.0,
            onsets: 0,
            bpm: None,
            beat_at: None,
            time: 0.0,
            source: "url",
            cost_ms: 0.0,
        }
    }
}

/// What the analysis listens to instead of the show's sound (`--audio-in`).
#[derive(Debug, Clone)]
pub enum AnalysisInput {
    /// A sound file, from its start at the first frame shown, on the show's clock.
    File(std::path::PathBuf),
    /// A capture device (by the name [`super::device::pick_input`] gave), measured as it
    /// arrives.
    Device(String),
}

/// The sound: its bus and its analysis, of the show's sound or of `--audio-in`'s.
pub struct SoundPlugin {
    /// `--audio-in`, opened: its sound (from its own bus), how it is placed in time, and
    /// its report.
    input: Option<(Receiver<Arc<AudioChunk>>, Timeline, SoundReport)>,
    /// `--audio-out`, started: the bus's tap it plays from, and the picture's clock.
    output: Option<(SoundTap, Arc<PresentationClock>, PlaybackReport)>,
}

/// The show's sound when a layer gives it (`--audio-from N`): the compositor inserts it
/// empty at start, and fills it once the layer's source opens; its chunks are already on
/// the show's stream time. While it is there, the `--url` source's sound is not the show's.
#[derive(Resource)]
pub struct LayerSoundFeed {
    /// Which layer, as the user counts them (1 = the first `--layer`).
    pub layer: usize,
    /// The feed, once the layer's source opened with sound.
    pub feed: Option<AudioFeed>,
}

/// What `--audio-out` has done, for the stats.
#[derive(Resource, Debug, Clone)]
pub struct PlaybackState(pub PlaybackReport);

/// Where the picture is, for `--audio-out`.
#[derive(Resource)]
struct ShownClock(Arc<PresentationClock>);

/// What `--audio-in` is, for the stats when the show itself has no sound.
#[derive(Resource, Debug, Clone)]
pub struct AnalysisReport(pub SoundReport);

impl SoundPlugin {
    /// Opens `--audio-in` (the file's reader or the device's capture thread start here)
    /// and `--audio-out` (its playback thread).
    pub fn open(
        input: Option<&AnalysisInput>,
        output: Option<&str>,
        lifecycle: &Lifecycle,
    ) -> crate::Result<Self> {
        let opened = match input {
            None => None,
            Some(AnalysisInput::File(path)) => {
                let feed = crate::decode::audio::read_file(path, lifecycle).map_err(|e| {
                    crate::error::LucidError::Usage(format!("--audio-in {}: {e}", path.display()))
                })?;
                Some((feed, Timeline::File { origin: None }))
            }
            Some(AnalysisInput::Device(name)) => Some((
                super::device::capture(name.clone(), lifecycle),
                Timeline::Arrival,
            )),
        };
        let input = opened.map(|(feed, timeline): (AudioFeed, Timeline)| {
            let (tx, rx) = bounded(TAP_QUEUE);
            let report = bus::start(feed, vec![tx], lifecycle);
            (rx, timeline, report)
        });
        let output = output.map(|name| {
            let (tx, rx) = bounded(TAP_QUEUE);
            let clock = Arc::new(PresentationClock::default());
            let report = super::device::play(name.to_string(), rx, clock.clone(), lifecycle);
            (tx, clock, report)
        });
        Ok(SoundPlugin { input, output })
    }
}

/// Where in the analysed sound a presented frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeline {
    /// The show's own sound: stamped in the video's stream time.
    Show,
    /// A file: its time 0 at the first frame shown (`origin`, a sample index of the
    /// show's stream time), then on with the show's stream time.
    File {
        /// The first measured frame's stream position.
        origin: Option<i64>,
    },
    /// A device: whatever has arrived is now.
    Arrival,
}

/// The analysis' inbox and state.
#[derive(Resource)]
struct Listening {
    rx: Receiver<Arc<AudioChunk>>,
    timeline: Timeline,
    /// The bus has ended: no more sound will come.
    ended: bool,
    analyzer: Analyzer,
    tempo: TempoTracker,
    /// Sample index (on the analysed sound's timeline) of the last frame measured.
    at: Option<i64>,
    last_onset: Option<i64>,
    /// The tempo as of the last hit.
    estimate: Option<(f64, f64)>,
    /// How far ahead of the frame just shown the sound must be, offline, before the next
    /// frame is shown (two frame intervals, at least a quarter second).
    lead: i64,
    measures: Vec<Measures>,
    /// Time spent measuring, and frames measured, for [`ShowSound::cost_ms`].
    spent: std::time::Duration,
    frames: u32,
}

impl Listening {
    fn new(rx: Receiver<Arc<AudioChunk>>, timeline: Timeline) -> Listening {
        Listening {
            rx,
            timeline,
            ended: false,
            analyzer: Analyzer::default(),
            tempo: TempoTracker::default(),
            at: None,
            last_onset: None,
            estimate: None,
            lead: i64::from(RATE) / 4,
            measures: Vec::new(),
            spent: std::time::Duration::ZERO,
            frames: 0,
        }
    }

    /// Whether offline presentation must wait for more sound: until it reaches `lead`
    /// past the last frame measured, unless it has ended, it comes from a device (whose
    /// sound arrives in real time: there is nothing to wait for), or the decode thread
    /// waits on a full picture queue (then the sound cannot come before the picture moves).
    fn holds_presentation(&self, offline: bool, picture_queue_full: bool) -> bool {
        let short = self
            .analyzer
            .available()
            .is_none_or(|end| end < self.at.unwrap_or(0) + self.lead);
        offline && self.timeline != Timeline::Arrival && !self.ended && !picture_queue_full && short
    }
}

/// Sound the analysis holds ahead of the frame at most before it stops taking more (a
/// file's reader then waits; a live source's bus drops and counts).
const AHEAD: i64 = 10 * RATE as i64;

impl Plugin for SoundPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<SoundTaps>()
            .init_resource::<ShowSound>()
            .add_systems(
                Update,
                (
                    start_bus.in_set(SoundSystems::Start),
                    take_sound.before(VideoSystems::Present),
                    analyze
                        .in_set(SoundSystems::Analyze)
                        .after(VideoSystems::Present),
                ),
            );
        if let Some((tap, clock, report)) = &self.output {
            app.insert_resource(SoundTaps(vec![tap.clone()]))
                .insert_resource(ShownClock(clock.clone()))
                .insert_resource(PlaybackState(report.clone()))
                .add_systems(Update, publish_shown.after(VideoSystems::Present));
        }
        if let Some((rx, timeline, report)) = &self.input {
            app.insert_resource(Listening::new(rx.clone(), *timeline))
                .insert_resource(AnalysisReport(report.clone()));
        }
    }
}

/// `--audio-out` plays each sample when the picture reaches its stream position.
fn publish_shown(mut presented: MessageReader<FramePresented>, clock: Res<ShownClock>) {
    if let Some(frame) = presented.read().last() {
        clock
            .0
            .presented(sample_index(frame.pts), std::time::Instant::now());
    }
}

fn start_bus(
    mut commands: Commands,
    mut ready: MessageReader<StreamReady>,
    mut taps: ResMut<SoundTaps>,
    mut listening: Option<ResMut<Listening>>,
    layer: Option<ResMut<LayerSoundFeed>>,
    mut lead: Local<Option<i64>>,
    lifecycle: Res<Lifecycle>,
) {
    let mut feed = None;
    if let Some(ready) = ready.read().last() {
        let interval = ready.info.frame_rate.map_or(0.0, |r| 2.0 / r.max(0.5));
        *lead = Some((interval.clamp(0.25, 4.0) * f64::from(RATE)) as i64);
        if let Some(l) = listening.as_mut() {
            l.lead = lead.unwrap_or_default();
        }
        feed = ready.info.audio.clone();
    }
    // A layer's sound, once the video is up and the layer's source opened.
    let mut source = "url".to_string();
    if let Some(mut layer) = layer {
        source = format!("layer {}", layer.layer);
        feed = None;
        if lead.is_some() {
            feed = layer.feed.take();
        }
    }
    let (Some(feed), Some(lead)) = (feed, *lead) else {
        return;
    };
    let mut all = std::mem::take(&mut taps.0);
    // With `--audio-in`, the analysis already listens to that: the show's sound goes to
    // the outputs alone.
    if listening.is_none() {
        let (tx, rx) = bounded(TAP_QUEUE);
        all.push(tx);
        let mut l = Listening::new(rx, Timeline::Show);
        l.lead = lead;
        commands.insert_resource(l);
    }
    let mut report = bus::start(feed, all, &lifecycle);
    report.source = source;
    commands.insert_resource(report);
}

/// Takes the sound that came; offline, holds presentation until the sound reaches past
/// the next frame (or has ended, or the decode thread waits on the picture queue: then
/// the sound cannot come before the picture moves, whatever the machine).
fn take_sound(
    listening: Option<ResMut<Listening>>,
    pacing: Option<ResMut<Pacing>>,
    feed: Option<Res<VideoFeed>>,
) {
    let Some(mut l) = listening else { return };
    loop {
        let full = match (l.at, l.analyzer.available()) {
            (Some(at), Some(end)) => end > at + AHEAD,
            _ => false,
        };
        if full {
            break;
        }
        match l.rx.try_recv() {
            Ok(chunk) => l
                .analyzer
                .push(chunk.start_index(), &chunk.left, &chunk.right),
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Disconnected) => {
                l.ended = true;
                break;
            }
        }
    }
    let Some(mut pacing) = pacing else { return };
    let full = feed.is_none_or(|f| f.queue_full());
    let waiting = l.holds_presentation(pacing.offline, full);
    if pacing.sound_waiting != waiting {
        pacing.sound_waiting = waiting;
    }
}

fn analyze(
    mut presented: MessageReader<FramePresented>,
    listening: Option<ResMut<Listening>>,
    mut sound: ResMut<ShowSound>,
) {
    let (Some(frame), Some(mut l)) = (presented.read().last(), listening) else {
        return;
    };
    let l = &mut *l;
    let started = std::time::Instant::now();
    let shown = sample_index(frame.pts);
    let at = match &mut l.timeline {
        Timeline::Show => shown,
        Timeline::File { origin } => shown - *origin.get_or_insert(shown),
        Timeline::Arrival => l.analyzer.available().unwrap_or(0),
    };
    l.at = Some(at);
    l.measures.clear();
    l.analyzer.run_until(at, &mut l.measures);
    let seconds = |index: i64| index as f64 / f64::from(RATE);
    sound.onset = false;
    for m in &l.measures {
        if m.onset {
            sound.onset = true;
            sound.onsets += 1;
            l.last_onset = Some(m.end);
            l.tempo.onset(seconds(m.end));
        }
    }
    // The loudest of the windows since the last frame, measure by measure: a hit shorter
    // than a frame still shows (sampling the last window alone would miss most of them).
    if let Some(first) = l.measures.first() {
        sound.heard = true;
        sound.source = match l.timeline {
            Timeline::Show => "url",
            Timeline::File { .. } => "file",
            Timeline::Arrival => "device",
        };
        sound.level = first.level;
        sound.bands = first.bands;
        sound.spectrum = first.spectrum;
        for m in &l.measures[1..] {
            sound.level = sound.level.max(m.level);
            for (held, v) in sound.bands.iter_mut().zip(m.bands) {
                *held = held.max(v);
            }
            for (held, v) in sound.spectrum.iter_mut().zip(m.spectrum) {
                *held = held.max(v);
            }
        }
    }
    sound.time = frame.pts.as_secs_f64();
    sound.pulse = l.last_onset.map_or(0.0, |t| {
        (1.0 - seconds(at - t) / ONSET_PULSE).clamp(0.0, 1.0) as f32
    });
    // The tempo moves only with a new hit.
    if sound.onset {
        l.estimate = l.tempo.estimate();
    }
    let estimate = l.estimate;
    sound.bpm = estimate.map(|(bpm, _)| bpm);
    // On the show's stream time, whatever timeline the analysed sound has.
    let shift = sound.time - seconds(at);
    sound.beat_at = estimate.map(|(_, hit)| hit + shift);
    l.spent += started.elapsed();
    l.frames += 1;
    sound.cost_ms = l.spent.as_secs_f64() * 1000.0 / f64::from(l.frames);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening(timeline: Timeline, sound_until: Option<i64>) -> Listening {
        let mut l = Listening::new(crossbeam_channel::never(), timeline);
        if let Some(end) = sound_until {
            l.analyzer
                .push(0, &vec![0.0; end as usize], &vec![0.0; end as usize]);
        }
        l.at = Some(48_000);
        l
    }

    #[test]
    fn offline_waits_for_sound_past_the_frame_but_never_for_a_device() {
        let lead = i64::from(RATE) / 4;
        // The file's or the show's sound is short of the frame plus the lead: wait.
        for timeline in [Timeline::Show, Timeline::File { origin: Some(0) }] {
            assert!(listening(timeline, Some(48_000)).holds_presentation(true, false));
            assert!(!listening(timeline, Some(48_000 + lead)).holds_presentation(true, false));
            // Not offline, or the picture queue full, or the sound ended: no wait.
            assert!(!listening(timeline, Some(48_000)).holds_presentation(false, false));
            assert!(!listening(timeline, Some(48_000)).holds_presentation(true, true));
            let mut ended = listening(timeline, None);
            ended.ended = true;
            assert!(!ended.holds_presentation(true, false));
        }
        // A device's sound arrives in real time: an offline render never waits for it.
        assert!(!listening(Timeline::Arrival, Some(48_000)).holds_presentation(true, false));
        assert!(!listening(Timeline::Arrival, None).holds_presentation(true, false));
    }
}
