//! The Bevy side of remote control: OSC messages from the listener thread are parsed and
//! applied once a frame, before the frame is presented, so a change shows in the next
//! rendered frame (outputs included); changed values go back to `--osc-feedback`.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use crossbeam_channel::Receiver;
use tracing::{info, warn};

use super::audio::{AudioMapping, Follower, Heard};
use super::midi::{MidiClock, MidiControl, MidiEvent, MidiInput, MidiMapping, Timed};
use super::osc::{self, Feedback};
use super::{ControlAction, RemoteOsc, set_enabled, set_param};
use crate::compositor::layers::{Fader, Layers};
use crate::daydream::plugin::Steer;
use crate::daydream::worker::SteerCommand;
use crate::effects::EffectSystems;
use crate::effects::chain::EffectChain;
use crate::effects::tempo::TapTempo;
use crate::effects::{EffectCatalog, EffectClock, MasterLevel, ShowTempo};
use crate::error::Result;
use crate::lifecycle::Lifecycle;
use crate::show::ShowState;
use crate::show::state::{AudioMappings, ControlReport, Cues, MidiLearn, MidiMappings};
use crate::sound::{ShowSound, SoundSystems};
use crate::video::{Freeze, RedrawCanvas, VideoSystems};

/// How often changed values are sent back at most.
const FEEDBACK_EVERY: Duration = Duration::from_millis(50);

/// OSC and MIDI.
pub struct ControlConfig {
    /// `--osc` and `--osc-allow`: where to listen, and whom to hear.
    pub osc: Option<osc::OscListen>,
    /// `--osc-feedback`, resolved.
    pub feedback: Option<SocketAddr>,
    /// `--midi`: the port, by number or name.
    pub midi: Option<String>,
    /// MIDI mappings from the scene and the preset.
    pub mappings: Vec<MidiMapping>,
    /// Sound mappings from the preset ([`AudioMappingPlugin`]).
    pub audio: Vec<AudioMapping>,
}

impl ControlConfig {
    /// True when OSC or MIDI is asked for.
    pub fn any(&self) -> bool {
        self.osc.is_some() || self.midi.is_some()
    }
}

/// Sound mappings: always there, so the overlay can add one to any show.
pub struct AudioMappingPlugin(pub Vec<AudioMapping>);

impl Plugin for AudioMappingPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(AudioMappings(self.0.clone()))
            .add_systems(
                Update,
                apply_audio
                    .in_set(EffectSystems::Inputs)
                    .after(SoundSystems::Analyze),
            );
    }
}

/// Remote control: OSC in (`--osc`), feedback out (`--osc-feedback`), MIDI (`--midi`).
pub struct ControlPlugin {
    /// Messages from the OSC listener, and what it dropped.
    pub osc: Option<osc::OscInput>,
    /// OSC from the HTTP API (`--http`), each answered once applied.
    pub remote: Option<Receiver<RemoteOsc>>,
    /// Where changed values go.
    pub feedback: Option<Feedback>,
    /// Messages from the MIDI input.
    pub midi: Option<Receiver<Timed>>,
    /// MIDI mappings to start with (from `--preset`).
    pub mappings: Vec<MidiMapping>,
}

impl ControlPlugin {
    /// Opens what `config` asks for: binds the OSC port, starts the feedback sender and
    /// opens the MIDI port, so a port in use or a missing device is an error before
    /// anything plays. `None` when no control is asked for. The MIDI connection stays open
    /// as long as the returned [`MidiInput`] lives.
    pub fn open(
        config: &ControlConfig,
        remote: Option<Receiver<RemoteOsc>>,
        lifecycle: &Lifecycle,
    ) -> Result<(Option<ControlPlugin>, Option<MidiInput>)> {
        if !config.any() && remote.is_none() {
            return Ok((None, None));
        }
        let osc = config
            .osc
            .as_ref()
            .map(|listen| osc::listen(listen, lifecycle))
            .transpose()?;
        let midi = config.midi.as_deref().map(MidiInput::open).transpose()?;
        let (midi, rx) = midi.map_or((None, None), |(m, rx)| (Some(m), Some(rx)));
        let plugin = ControlPlugin {
            osc,
            remote,
            feedback: config
                .feedback
                .map(|to| Feedback::start(to, lifecycle))
                .transpose()?,
            midi: rx,
            mappings: config.mappings.clone(),
        };
        Ok((Some(plugin), midi))
    }
}

#[derive(Resource)]
struct OscInbox(osc::OscInput);

#[derive(Resource)]
struct MidiInbox(Receiver<Timed>);

#[derive(Resource)]
struct RemoteInbox(Receiver<RemoteOsc>);

#[derive(Resource, Clone)]
struct OscFeedback(Feedback);

impl Plugin for ControlPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ControlReport>()
            .insert_resource(MidiMappings(self.mappings.clone()))
            .init_resource::<MidiLearn>();
        if let Some(osc) = &self.osc {
            app.insert_resource(OscInbox(osc.clone()))
                .add_systems(Update, apply_osc.before(VideoSystems::Present));
        }
        if let Some(remote) = &self.remote {
            app.insert_resource(RemoteInbox(remote.clone()))
                .add_systems(Update, apply_remote.before(VideoSystems::Present));
        }
        if let Some(midi) = &self.midi {
            app.insert_resource(MidiInbox(midi.clone()))
                .add_systems(Update, apply_midi.before(VideoSystems::Present));
        }
        if let Some(feedback) = &self.feedback {
            app.insert_resource(OscFeedback(feedback.clone()))
                .add_systems(Update, send_feedback.before(VideoSystems::Present));
        }
    }
}

/// Each sound mapping follows the sound measured at the frame just presented; what they
/// ask lands in this frame's chain (the passes are built after).
fn apply_audio(
    mappings: Res<AudioMappings>,
    sound: Res<ShowSound>,
    mut controls: Controls,
    mut followers: Local<Vec<Follower>>,
    mut taps: Local<TapTempo>,
    mut warned: Local<HashSet<usize>>,
) {
    if !sound.heard || !sound.is_changed() {
        return;
    }
    let heard = Heard {
        time: sound.time,
        level: sound.level,
        bands: sound.bands,
        onset: sound.onset,
    };
    // A mapping added, replaced or removed (the overlay, a loaded preset) starts its
    // envelope afresh: followers go by place, and places shift.
    if mappings.is_changed() {
        followers.clear();
        warned.clear();
    }
    followers.resize_with(mappings.0.len(), Follower::default);
    for (i, (mapping, follower)) in mappings.0.iter().zip(followers.iter_mut()).enumerate() {
        let Some(action) = follower.follow(mapping, &heard) else {
            continue;
        };
        if let Err(why) = apply(&action, &mut controls, &mut taps)
            && warned.insert(i)
        {
            warn!("audio mapping of {:?}: {why}", mapping.input);
        }
    }
}

/// The show's state an action may touch.
#[derive(bevy::ecs::system::SystemParam)]
struct Controls<'w> {
    chain: ResMut<'w, EffectChain>,
    catalog: Res<'w, EffectCatalog>,
    master: ResMut<'w, MasterLevel>,
    show: Option<ResMut<'w, ShowState>>,
    freeze: ResMut<'w, Freeze>,
    redraw: ResMut<'w, RedrawCanvas>,
    tempo: ResMut<'w, ShowTempo>,
    clock: Res<'w, EffectClock>,
    steer: Option<Res<'w, Steer>>,
    cues: Option<ResMut<'w, Cues>>,
    layers: Option<ResMut<'w, Layers>>,
    fader: Option<ResMut<'w, Fader>>,
}

fn apply_osc(
    inbox: Res<OscInbox>,
    mut controls: Controls,
    mut report: ResMut<ControlReport>,
    mut warned: Local<HashSet<String>>,
    mut taps: Local<TapTempo>,
) {
    report.osc_denied = inbox.0.denied();
    report.osc_dropped = inbox.0.dropped();
    for message in inbox.0.messages.try_iter() {
        report.osc_received += 1;
        let outcome = osc::parse(&message)
            .map_err(|e| e.to_string())
            .and_then(|action| apply(&action, &mut controls, &mut taps));
        match outcome {
            Ok(()) => report.osc_applied += 1,
            Err(why) => {
                report.osc_rejected += 1;
                // Once per address: a controller sending 60 a second must not flood the log.
                if warned.insert(message.addr.clone()) {
                    warn!("OSC {}: {why}; ignored", message.addr);
                }
            }
        }
    }
}

/// OSC from the HTTP API: applied like `--osc`'s, and each asker told the outcome.
fn apply_remote(
    inbox: Res<RemoteInbox>,
    mut controls: Controls,
    mut report: ResMut<ControlReport>,
    mut taps: Local<TapTempo>,
) {
    for RemoteOsc { message, reply } in inbox.0.try_iter() {
        report.http_osc += 1;
        let outcome = osc::parse(&message)
            .map_err(|e| e.to_string())
            .and_then(|action| apply(&action, &mut controls, &mut taps))
            .map_err(|why| format!("{}: {why}", message.addr));
        // The asker may have given up (a timeout): nothing to tell.
        let _ = reply.send(outcome);
    }
}

fn apply_midi(
    inbox: Res<MidiInbox>,
    mut controls: Controls,
    mut report: ResMut<ControlReport>,
    (mappings, learn): (ResMut<MidiMappings>, ResMut<MidiLearn>),
    mut clock: Local<MidiClock>,
    mut taps: Local<TapTempo>,
) {
    let (mut mappings, mut learn) = (mappings, learn);
    for (time, bytes) in inbox.0.try_iter() {
        let Some(event) = MidiEvent::parse(&bytes) else {
            continue;
        };
        report.midi_received += 1;
        match event {
            MidiEvent::Clock => {
                if let Some(bpm) = clock.tick(time) {
                    controls.tempo.0.bpm = bpm;
                    report.midi_clock_bpm = Some(bpm);
                }
                continue;
            }
            MidiEvent::Start => {
                // The beat restarts now: beat 0 is this instant of the effect clock.
                controls.tempo.0.anchor = f64::from(controls.clock.time);
                continue;
            }
            _ => {}
        }
        if let Some((target, since)) = learn.waiting.take()
            && since.elapsed() < super::midi::LEARN_TIMEOUT
            && let Some(control) = MidiControl::of(&event)
        {
            // One control drives one thing: a relearned control replaces its mapping.
            mappings.0.retain(|m| m.control != control);
            let text = format!("{control:?} -> {target:?}");
            info!("MIDI learned: {text}");
            learn.learned = Some(text);
            mappings.0.push(MidiMapping { control, target });
            continue;
        }
        for mapping in &mappings.0 {
            if let Some(action) = mapping.action(&event) {
                match apply(&action, &mut controls, &mut taps) {
                    Ok(()) => report.midi_applied += 1,
                    Err(why) => warn!("MIDI {:?}: {why}", mapping.control),
                }
            }
        }
    }
}

fn apply(
    action: &ControlAction,
    c: &mut Controls,
    taps: &mut TapTempo,
) -> std::result::Result<(), String> {
    let mut redraw = true;
    match action {
        ControlAction::EffectParam {
            effect,
            param,
            amount,
        } => {
            set_param(&mut c.chain.effects, &c.catalog, effect, param, amount)
                .map_err(|e| e.to_string())?;
        }
        ControlAction::EffectEnabled { effect, on } => {
            set_enabled(&mut c.chain.effects, effect, *on).map_err(|e| e.to_string())?;
        }
        ControlAction::LayerEffect { layer, action } => {
            let layers = c.layers.as_mut().ok_or("no layers (--layer)")?;
            let count = layers.len();
            let chain = layers
                .effects_mut(layer - 1)
                .ok_or_else(|| format!("no layer {layer} (there are {count})"))?;
            match action.as_ref() {
                ControlAction::EffectParam {
                    effect,
                    param,
                    amount,
                } => set_param(chain, &c.catalog, effect, param, amount),
                ControlAction::EffectEnabled { effect, on } => set_enabled(chain, effect, *on),
                _ => return Err("only effect parameters and switches apply to a layer".into()),
            }
            .map_err(|e| format!("layer {layer}: {e}"))?;
        }
        ControlAction::Blackout(on) => {
            let black = on.apply(c.master.level == 0.0);
            let level = if black { 0.0 } else { 1.0 };
            c.master.level = level;
            if let Some(show) = c.show.as_mut() {
                show.target = level;
            }
        }
        ControlAction::Fade(on) => {
            let current = c.show.as_ref().map_or(c.master.level, |s| s.target);
            let level = if on.apply(current == 0.0) { 0.0 } else { 1.0 };
            match c.show.as_mut() {
                Some(show) => show.target = level,
                // Headless there is no fade to run: the level is set at once.
                None => c.master.level = level,
            }
        }
        ControlAction::Level(level) => {
            c.master.level = *level;
            if let Some(show) = c.show.as_mut() {
                show.target = *level;
            }
        }
        ControlAction::Freeze(on) => c.freeze.0 = on.apply(c.freeze.0),
        ControlAction::Tap => {
            redraw = false;
            if let Some(tapped) = taps.tap(f64::from(c.clock.time)) {
                c.tempo.0 = tapped;
                info!("tempo {:.1} bpm (tapped over OSC)", tapped.bpm);
            }
        }
        ControlAction::Bpm(bpm) => {
            redraw = false;
            c.tempo.0.bpm = *bpm;
        }
        ControlAction::Prompt(prompt) => {
            redraw = false;
            let steer = c
                .steer
                .as_ref()
                .ok_or("no Daydream stream is being steered")?;
            steer.send(SteerCommand::Set {
                name: crate::daydream::api::param::PROMPT.into(),
                value: prompt.clone().into(),
            });
        }
        ControlAction::Crossfade(position) => {
            let fader = c.fader.as_mut().ok_or("no layers (--layer) to crossfade")?;
            fader.0.set(*position);
        }
        ControlAction::CrossfadeGo => {
            let fader = c.fader.as_mut().ok_or("no layers (--layer) to crossfade")?;
            fader.0.go_other_side();
        }
        ControlAction::LayerOpacity { layer, opacity } => {
            let layers = c.layers.as_mut().ok_or("no layers (--layer)")?;
            if !layers.set_opacity(layer - 1, *opacity) {
                return Err(format!("no layer {layer} (there are {})", layers.len()));
            }
        }
        ControlAction::CueNext | ControlAction::CuePrevious | ControlAction::CueGo(_) => {
            redraw = false;
            let (Some(steer), Some(cues)) = (c.steer.as_ref(), c.cues.as_mut()) else {
                return Err("no Daydream cues (--cues) are loaded".into());
            };
            if cues.0.cues.is_empty() {
                return Err("no Daydream cues (--cues) are loaded".into());
            }
            let commands = match action {
                ControlAction::CueNext => cues.0.go_next(),
                ControlAction::CuePrevious => cues.0.go_previous(),
                ControlAction::CueGo(n) if *n <= cues.0.cues.len() => cues.0.go(n - 1),
                ControlAction::CueGo(n) => {
                    return Err(format!("no cue {n} (there are {})", cues.0.cues.len()));
                }
                // The arm's other actions are the two above.
                _ => Vec::new(),
            };
            if let Some(i) = cues.0.current {
                info!("cue {} (OSC)", i + 1);
            }
            for command in commands {
                steer.send(command);
            }
        }
    }
    if redraw {
        // A frozen or stalled picture shows the change too.
        c.redraw.0 = true;
    }
    Ok(())
}

/// When feedback was last sent, and the values sent by address.
type SentValues = (Option<Instant>, BTreeMap<String, Vec<f32>>);

/// Sends every value that changed since the last send: effect parameters, mix and
/// enabled, the master level and freeze, whoever changed them (OSC, overlay, keys), and
/// the sound's analysis (`/lucid/audio/level`, `bands`, `onset`, `bpm`).
/// The show's values by OSC address, normalized as a controller sends them: what
/// `--osc-feedback` sends and the web remote shows.
pub fn osc_values(
    chain: &EffectChain,
    catalog: &EffectCatalog,
    master: f32,
    freeze: bool,
    sound: &ShowSound,
) -> BTreeMap<String, Vec<f32>> {
    let mut values = BTreeMap::new();
    for (i, effect) in chain.effects.iter().enumerate() {
        let base = format!("/lucid/effect/{i}");
        values.insert(
            format!("{base}/enabled"),
            vec![f32::from(u8::from(effect.enabled))],
        );
        values.insert(format!("{base}/mix"), vec![effect.mix]);
        if let Some(def) = catalog.get(&effect.effect) {
            for p in &def.params {
                if let Some(v) = effect.value(&def, &p.name) {
                    values.insert(format!("{base}/{}", p.name), super::normalized(p.kind, &v));
                }
            }
        }
    }
    values.insert("/lucid/master/level".into(), vec![master]);
    values.insert("/lucid/freeze".into(), vec![f32::from(u8::from(freeze))]);
    if sound.heard {
        values.insert("/lucid/audio/level".into(), vec![sound.level]);
        values.insert("/lucid/audio/bands".into(), sound.bands.to_vec());
        values.insert("/lucid/audio/onset".into(), vec![sound.pulse]);
        if let Some(bpm) = sound.bpm {
            values.insert("/lucid/audio/bpm".into(), vec![bpm as f32]);
        }
    }
    values
}

fn send_feedback(
    feedback: Res<OscFeedback>,
    chain: Res<EffectChain>,
    catalog: Res<EffectCatalog>,
    master: Res<MasterLevel>,
    freeze: Res<Freeze>,
    sound: Res<ShowSound>,
    mut last: Local<SentValues>,
) {
    let now = Instant::now();
    if last.0.is_some_and(|t| now - t < FEEDBACK_EVERY) {
        return;
    }
    last.0 = Some(now);
    let values = osc_values(&chain, &catalog, master.level, freeze.0, &sound);
    for (address, v) in &values {
        if last.1.get(address) != Some(v) {
            feedback.0.send(address.clone(), v);
        }
    }
    last.1 = values;
}
