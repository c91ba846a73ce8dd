//! `--state FILE`: the show's live state kept on disk, so a restart after a SIGKILL, a hang
//! or a power cut comes back as it was.
//!
//! [`ShowSnapshot`] is what is kept: blackout/fade (where the master level is heading),
//! freeze, the crossfader, the current cue, the master chain (effects, enables, mix,
//! parameters) and the layers' opacities. It is written atomically (a temporary file in
//! the same folder, fsync, rename, fsync of the folder: a reader or a power cut sees the
//! old file or the new one, never half of one) by the `lucid-state` thread, within a
//! second of a change; the frame loop only hands it the latest snapshot. At start it is
//! read back; a file that does not parse is set aside (renamed `FILE.corrupt`) with a
//! warning, never fatal.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::compositor::layers::{Fader, Layers};
use crate::effects::chain::{EffectChain, EffectInstance};
use crate::effects::{EffectCatalog, MasterLevel};
use crate::lifecycle::Lifecycle;
use crate::show::ShowState;
use crate::show::state::Cues;
use crate::video::{Freeze, VideoSystems};

/// How long after a change the state is on disk at the latest (a fader being dragged
/// writes a few times a second, not every frame).
const WRITE_EVERY: Duration = Duration::from_millis(250);

/// The show's live state, as kept in `--state FILE` (RON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShowSnapshot {
    /// Where the master level is heading: 0 after a blackout or a fade out, 1 when up.
    pub master: f32,
    /// The picture held.
    pub freeze: bool,
    /// Where the crossfader is heading, 0 (A) to 1 (B).
    pub crossfader: f32,
    /// The Daydream cue last gone to.
    #[serde(default)]
    pub cue: Option<usize>,
    /// The master chain.
    pub effects: Vec<EffectInstance>,
    /// Each layer's opacity, bottom first.
    #[serde(default)]
    pub layers: Vec<f32>,
}

impl ShowSnapshot {
    /// The text kept on disk.
    pub fn to_text(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default()).unwrap_or_default()
    }

    /// Reads `path`: `Ok(None)` when there is none yet; a file that does not parse is
    /// renamed `PATH.corrupt` (the reason is returned for a warning) and the show starts
    /// as the command line says.
    pub fn load(path: &Path) -> Result<Option<ShowSnapshot>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read it ({e})")),
        };
        match ron::from_str::<ShowSnapshot>(&text) {
            Ok(s) if s.is_sane() => Ok(Some(s)),
            parsed => {
                let why = match parsed {
                    Err(e) => e.to_string(),
                    Ok(_) => "a value out of range".into(),
                };
                let aside = set_aside_name(path);
                let moved = std::fs::rename(path, &aside)
                    .map(|()| format!("set aside as {}", aside.display()))
                    .unwrap_or_else(|e| format!("could not set it aside ({e})"));
                Err(format!("it is not a state file ({why}); {moved}"))
            }
        }
    }

    fn is_sane(&self) -> bool {
        let unit = |v: f32| (0.0..=1.0).contains(&v);
        unit(self.master)
            && unit(self.crossfader)
            && self.layers.iter().all(|o| unit(*o))
            && self.effects.iter().all(|e| e.mix.is_finite())
    }
}

fn set_aside_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    PathBuf::from(name)
}

/// Writes `text` to `path` so that a crash at any moment leaves the old file or the new
/// one: a temporary file beside it, fsync, rename over, fsync of the folder.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Keeps the show's state in `--state FILE` and restores it at start.
pub struct PersistPlugin {
    /// The file.
    pub path: PathBuf,
    /// What it held at start, read before the app was built.
    pub restored: Option<ShowSnapshot>,
}

#[derive(Resource)]
struct Persist {
    tx: Sender<ShowSnapshot>,
    restore: Option<ShowSnapshot>,
    last: Option<ShowSnapshot>,
    /// Since when a change has waited to be handed to the writer.
    pending: Option<Instant>,
}

impl Plugin for PersistPlugin {
    fn build(&self, app: &mut App) {
        let (tx, rx) = bounded(1);
        let lifecycle = app.world().resource::<Lifecycle>().clone();
        let path = self.path.clone();
        lifecycle.spawn("lucid-state", move || writer(&path, &rx));
        app.insert_resource(Persist {
            tx,
            restore: self.restored.clone(),
            last: None,
            pending: None,
        })
        .add_systems(
            Update,
            (restore, keep).chain().before(VideoSystems::Present),
        );
    }
}

/// The `lucid-state` thread: writes each snapshot it gets; ends when the app drops its
/// sender (the last snapshot is written first).
fn writer(path: &Path, rx: &Receiver<ShowSnapshot>) {
    let mut failed = false;
    for snapshot in rx.iter() {
        match write_atomically(path, &snapshot.to_text()) {
            Ok(()) => failed = false,
            Err(e) if !failed => {
                failed = true;
                warn!(
                    "--state {}: cannot write it ({e}); the show goes on, tried again at the next change",
                    path.display()
                );
            }
            Err(_) => {}
        }
    }
}

/// What the show's resources say now.
#[derive(bevy::ecs::system::SystemParam)]
struct Live<'w> {
    master: ResMut<'w, MasterLevel>,
    show: Option<ResMut<'w, ShowState>>,
    freeze: ResMut<'w, Freeze>,
    fader: Option<ResMut<'w, Fader>>,
    cues: Option<ResMut<'w, Cues>>,
    chain: ResMut<'w, EffectChain>,
    catalog: Res<'w, EffectCatalog>,
    layers: Option<ResMut<'w, Layers>>,
}

impl Live<'_> {
    fn snapshot(&self) -> ShowSnapshot {
        ShowSnapshot {
            master: self.show.as_ref().map_or(self.master.level, |s| s.target),
            freeze: self.freeze.0,
            crossfader: self.fader.as_ref().map_or(0.0, |f| f.0.target),
            cue: self.cues.as_ref().and_then(|c| c.0.current),
            effects: self.chain.effects.clone(),
            layers: self
                .layers
                .as_ref()
                .map(|l| l.opacities())
                .unwrap_or_default(),
        }
    }
}

/// Once, at the first frame: the kept state over the command line's.
fn restore(mut persist: ResMut<Persist>, mut live: Live) {
    let Some(kept) = persist.restore.take() else {
        return;
    };
    live.master.level = kept.master;
    if let Some(show) = live.show.as_mut() {
        show.target = kept.master;
    }
    live.freeze.0 = kept.freeze;
    if let Some(fader) = live.fader.as_mut() {
        fader.0.position = kept.crossfader;
        fader.0.target = kept.crossfader;
    }
    match kept
        .effects
        .iter()
        .find(|e| live.catalog.get(&e.effect).is_none())
    {
        None => live.chain.effects = kept.effects.clone(),
        Some(gone) => warn!(
            "--state: its chain has {:?}, which is not loaded now; keeping the command line's chain",
            gone.effect
        ),
    }
    if let Some(layers) = live.layers.as_mut() {
        for (i, opacity) in kept.layers.iter().enumerate() {
            layers.set_opacity(i, *opacity);
        }
    }
    // The Daydream plugin sends a current cue to the stream (in PostUpdate, after this).
    if let (Some(cues), Some(i)) = (live.cues.as_mut(), kept.cue)
        && i < cues.0.cues.len()
    {
        cues.0.current = Some(i);
    }
    info!(
        "state restored: master {:.2}, freeze {}, crossfader {:.2}, {} effect(s){}",
        kept.master,
        if kept.freeze { "on" } else { "off" },
        kept.crossfader,
        live.chain.effects.len(),
        kept.cue
            .map(|c| format!(", cue {}", c + 1))
            .unwrap_or_default()
    );
}

/// Each frame: a changed state goes to the writer, at most every [`WRITE_EVERY`], and at
/// once when the show is stopping (its last frames may be its last).
fn keep(mut persist: ResMut<Persist>, live: Live, lifecycle: Res<Lifecycle>) {
    let now = live.snapshot();
    if persist.last.as_ref() == Some(&now) {
        persist.pending = None;
        return;
    }
    let since = *persist.pending.get_or_insert_with(Instant::now);
    let waited = since.elapsed() >= WRITE_EVERY;
    if persist.last.is_some() && !waited && !lifecycle.stopping() {
        return;
    }
    match persist.tx.try_send(now.clone()) {
        Ok(()) => {
            persist.last = Some(now);
            persist.pending = None;
        }
        // The writer is still on the last one (a slow disk): try again next frame.
        Err(TrySendError::Full(_)) => {}
        Err(TrySendError::Disconnected(_)) => persist.pending = None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> ShowSnapshot {
        ShowSnapshot {
            master: 0.0,
            freeze: true,
            crossfader: 0.75,
            cue: Some(2),
            effects: vec![EffectInstance {
                effect: "tint".into(),
                enabled: false,
                mix: 0.5,
                params: Default::default(),
            }],
            layers: vec![0.25, 1.0],
        }
    }

    #[test]
    fn a_state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("show.state");
        assert_eq!(ShowSnapshot::load(&path), Ok(None), "none yet");
        write_atomically(&path, &snapshot().to_text()).unwrap();
        assert_eq!(ShowSnapshot::load(&path), Ok(Some(snapshot())));
        // Written again over itself: no temporary file left beside it.
        write_atomically(&path, &snapshot().to_text()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_corrupt_state_is_set_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("show.state");
        let text = snapshot().to_text();
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        let e = ShowSnapshot::load(&path).unwrap_err();
        assert!(e.contains("set aside as"), "{e}");
        assert!(!path.exists());
        assert!(dir.path().join("show.state.corrupt").exists());
        // Out of range is as bad as unreadable.
        let mut wild = snapshot();
        wild.master = 7.0;
        std::fs::write(&path, wild.to_text()).unwrap();
        assert!(ShowSnapshot::load(&path).is_err());
    }
}
