//! Show controls for performing: blackout, fade to black, freeze frame, screenshots,
//! fullscreen on a chosen monitor, and effect toggles on the number keys. Every control
//! acts on the canvas (what the audience and the recordings see), never on the UI.
//! [`state`] holds the UI-facing state the controls write and the overlay reads.

pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use bevy::render::render_resource::{Extent3d, TextureDimension};
use bevy::window::{
    Monitor, MonitorSelection, PrimaryMonitor, PrimaryWindow, WindowMode, WindowPosition,
};
use tracing::{info, warn};

use crate::effects::chain::EffectChain;
use crate::effects::tempo::TapTempo;
use crate::effects::{EffectClock, MasterLevel, ShowTempo};
use crate::video::{Freeze, OutputCanvas, RedrawCanvas, VideoSystems};
pub use state::{KeyboardCaptured, ShowState};

/// The keyboard shortcuts, for the overlay's help and the README.
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("F1", "show / hide the overlay"),
    ("B", "blackout on / off (instant)"),
    ("F", "fade to black / back (over --fade seconds)"),
    ("Space", "freeze frame on / off"),
    ("S or F12", "screenshot of the output (PNG)"),
    ("T", "tap the tempo (effects' bpm and beat)"),
    ("X", "crossfade to the other bus (over --crossfade seconds)"),
    ("F11", "fullscreen on / off (on the --monitor screen)"),
    ("1 .. 9", "switch effect 1..9 of the chain on / off"),
    ("] or PageDown", "next Daydream cue (--cues)"),
    ("[ or PageUp", "previous Daydream cue"),
    ("Q or Esc", "quit (outputs are finalized)"),
];

/// Settings from the command line.
pub struct ShowPlugin {
    /// Fade duration.
    pub fade: Duration,
    /// Where screenshots go.
    pub screenshot_dir: PathBuf,
    /// `--monitor`.
    pub monitor: Option<usize>,
}

impl Plugin for ShowPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(ShowState {
            target: 1.0,
            speed: 1.0 / self.fade.as_secs_f32().max(0.001),
            screenshot_dir: self.screenshot_dir.clone(),
            last_screenshot: None,
            monitor: self.monitor,
            windowed_size: None,
        })
        .init_resource::<KeyboardCaptured>()
        .init_resource::<Screenshots>()
        .add_systems(Update, (collect_screenshots, tap_tempo))
        .add_systems(
            Update,
            (show_keys, move_master)
                .chain()
                .before(VideoSystems::Present),
        )
        .add_systems(Update, (check_monitor, cover_monitor).chain());
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn show_keys(
    mut commands: Commands,
    keys: Res<ButtonInput<KeyCode>>,
    captured: Res<KeyboardCaptured>,
    mut show: ResMut<ShowState>,
    mut master: ResMut<MasterLevel>,
    mut freeze: ResMut<Freeze>,
    mut chain: ResMut<EffectChain>,
    canvas: Option<Res<OutputCanvas>>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
    screenshots: Res<Screenshots>,
) {
    if captured.0 {
        return;
    }
    if keys.just_pressed(KeyCode::KeyB) {
        let to = if show.target > 0.0 { 0.0 } else { 1.0 };
        show.target = to;
        master.level = to;
        info!("blackout {}", if to == 0.0 { "on" } else { "off" });
    }
    if keys.just_pressed(KeyCode::KeyF) {
        show.target = if show.target > 0.0 { 0.0 } else { 1.0 };
        info!(
            "fading {}",
            if show.target == 0.0 { "to black" } else { "in" }
        );
    }
    if keys.just_pressed(KeyCode::Space) {
        freeze.0 = !freeze.0;
        info!("freeze {}", if freeze.0 { "on" } else { "off" });
    }
    if keys.any_just_pressed([KeyCode::KeyS, KeyCode::F12])
        && let Some(canvas) = canvas
    {
        // The canvas as it is now: the picture on screen, frozen or between frames alike.
        take_screenshot(&mut commands, &canvas, &show.screenshot_dir, &screenshots);
    }
    if keys.just_pressed(KeyCode::F11)
        && let Ok(mut window) = windows.single_mut()
    {
        window.mode = match window.mode {
            WindowMode::Windowed => {
                WindowMode::BorderlessFullscreen(monitor_selection(show.monitor))
            }
            _ => {
                // cover_monitor resized the window; give it its size back.
                if let Some(size) = show.windowed_size.take() {
                    window.resolution.set_physical_resolution(size.x, size.y);
                }
                WindowMode::Windowed
            }
        };
    }
    let digits = [
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
        KeyCode::Digit5,
        KeyCode::Digit6,
        KeyCode::Digit7,
        KeyCode::Digit8,
        KeyCode::Digit9,
    ];
    for (i, key) in digits.iter().enumerate() {
        if keys.just_pressed(*key)
            && let Some(effect) = chain.effects.get_mut(i)
        {
            effect.enabled = !effect.enabled;
            info!(
                "effect {} ({}) {}",
                i + 1,
                effect.effect,
                if effect.enabled { "on" } else { "off" }
            );
        }
    }
}

/// The monitor `--monitor` names, for fullscreen.
pub fn monitor_selection(index: Option<usize>) -> MonitorSelection {
    index.map_or(MonitorSelection::Current, MonitorSelection::Index)
}

/// Moves the master level toward its target; a change redraws the canvas even when no
/// new video frame arrives (a fade during a stalled stream still fades).
fn move_master(
    time: Res<Time<Real>>,
    show: Res<ShowState>,
    mut master: ResMut<MasterLevel>,
    mut redraw: ResMut<RedrawCanvas>,
) {
    if master.level == show.target {
        return;
    }
    let step = show.speed * time.delta_secs();
    master.level = if master.level < show.target {
        (master.level + step).min(show.target)
    } else {
        (master.level - step).max(show.target)
    };
    redraw.0 = true;
}

/// Screenshots on their way to disk: counted from the key press until the file is
/// complete (quitting waits for them), and their outcomes for the overlay.
#[derive(Resource, Clone)]
pub struct Screenshots {
    pending: Arc<AtomicUsize>,
    done_tx: Sender<std::result::Result<PathBuf, String>>,
    done_rx: Receiver<std::result::Result<PathBuf, String>>,
}

impl Default for Screenshots {
    fn default() -> Self {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Screenshots {
            pending: Arc::default(),
            done_tx,
            done_rx,
        }
    }
}

impl Screenshots {
    /// Screenshots taken but not complete on disk yet.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::SeqCst)
    }
}

/// One screenshot's read-back. A `Readback` reads every frame until its entity is
/// despawned, and the despawn is deferred: only the first completion is used.
#[derive(Component)]
struct ScreenshotReadback {
    path: PathBuf,
    size: UVec2,
    taken: AtomicBool,
}

/// Reads the canvas back (Bevy's `Screenshot` captures what cameras draw into a target, and
/// no camera draws the canvas: its passes do) and writes it as a PNG on a thread.
fn take_screenshot(
    commands: &mut Commands,
    canvas: &OutputCanvas,
    dir: &std::path::Path,
    screenshots: &Screenshots,
) {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let path = dir.join(format!("lucid-{stamp}.png"));
    screenshots.pending.fetch_add(1, Ordering::SeqCst);
    let shots = screenshots.clone();
    commands
        .spawn((
            Readback::texture(canvas.image.clone()),
            ScreenshotReadback {
                path,
                size: canvas.size,
                taken: AtomicBool::new(false),
            },
        ))
        .observe(
            move |done: On<ReadbackComplete>,
                  requests: Query<&ScreenshotReadback>,
                  mut commands: Commands| {
                let Ok(request) = requests.get(done.entity) else {
                    return;
                };
                if request.taken.swap(true, Ordering::SeqCst) {
                    return;
                }
                commands.entity(done.entity).despawn();
                save_screenshot(
                    &done.data,
                    request.size,
                    request.path.clone(),
                    shots.clone(),
                );
            },
        );
}

/// Unpads the read-back rows (wgpu aligns them to 256 bytes) and encodes the PNG on a
/// thread: that takes tens of milliseconds at 1080p, never on the frame's thread.
fn save_screenshot(padded: &[u8], size: UVec2, path: PathBuf, shots: Screenshots) {
    let pixels: Vec<u8> = crate::output::readback_rows(padded, size.x as usize * 4)
        .take(size.y as usize)
        .flatten()
        .copied()
        .collect();
    let image = Image::new(
        Extent3d {
            width: size.x,
            height: size.y,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        pixels,
        crate::video::render::CANVAS_FORMAT,
        RenderAssetUsages::MAIN_WORLD,
    );
    let image = match image.try_into_dynamic() {
        Ok(image) => image.to_rgb8(),
        Err(e) => {
            warn!("screenshot failed: {e}");
            let _ = shots.done_tx.send(Err(format!("screenshot failed: {e}")));
            shots.pending.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    };
    // Written under a temporary name and renamed, so the file is never seen half done.
    std::thread::spawn(move || {
        let partial = path.with_extension("part.png");
        let result = image
            .save(&partial)
            .map_err(|e| e.to_string())
            .and_then(|()| std::fs::rename(&partial, &path).map_err(|e| e.to_string()))
            .map(|()| path.clone())
            .map_err(|e| {
                let _ = std::fs::remove_file(&partial);
                format!("screenshot {} could not be saved: {e}", path.display())
            });
        // Logged here, once the file is complete: a quit that waited for this
        // thread may not run another update to log it.
        match &result {
            Ok(path) => info!("screenshot saved: {}", path.display()),
            Err(e) => warn!("{e}"),
        }
        let _ = shots.done_tx.send(result);
        shots.pending.fetch_sub(1, Ordering::SeqCst);
    });
}

/// T taps the tempo on the effect clock: effects' `beat` counts from the last tap.
fn tap_tempo(
    keys: Res<ButtonInput<KeyCode>>,
    captured: Res<KeyboardCaptured>,
    clock: Res<EffectClock>,
    mut taps: Local<TapTempo>,
    mut tempo: ResMut<ShowTempo>,
) {
    if captured.0 || !keys.just_pressed(KeyCode::KeyT) {
        return;
    }
    if let Some(tapped) = taps.tap(f64::from(clock.time)) {
        tempo.0 = tapped;
        info!("tempo {:.1} bpm (tapped)", tapped.bpm);
    }
}

/// Shows screenshots in the overlay once they are complete on disk.
fn collect_screenshots(screenshots: Res<Screenshots>, mut show: ResMut<ShowState>) {
    for done in screenshots.done_rx.try_iter() {
        show.last_screenshot = Some(match done {
            Ok(path) => path.display().to_string(),
            Err(e) => e,
        });
    }
}

/// Logs the monitors once they are known and falls back to the current one when
/// `--monitor` names one that does not exist (a show should still play).
fn check_monitor(
    mut checked: Local<bool>,
    show: Res<ShowState>,
    monitors: Query<&Monitor>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
) {
    if *checked || monitors.is_empty() {
        return;
    }
    *checked = true;
    let list: Vec<String> = monitors
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "{i}: {} {}x{}",
                m.name.as_deref().unwrap_or("unnamed"),
                m.physical_width,
                m.physical_height
            )
        })
        .collect();
    info!("monitors: {}", list.join(", "));
    if let Some(n) = show.monitor
        && n >= list.len()
    {
        warn!(
            "--monitor {n}: there are {} monitor(s); using the primary one",
            list.len()
        );
        if let Ok(mut window) = windows.single_mut()
            && matches!(window.mode, WindowMode::BorderlessFullscreen(_))
        {
            window.mode = WindowMode::BorderlessFullscreen(MonitorSelection::Primary);
        }
    }
}

/// Fullscreen without a window manager (a bare X server, as kiosk installations often
/// run) is only a hint nobody acts on; the window is moved onto the monitor and sized to
/// it by hand. With a window manager the sizes already match and this does nothing.
fn cover_monitor(
    mut show: ResMut<ShowState>,
    monitors: Query<(&Monitor, Has<PrimaryMonitor>)>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
) {
    // Read-only first: touching the window mutably marks it changed, and bevy_winit then
    // re-applies every window setting each frame (the picture goes black on lavapipe).
    let Ok(window) = windows.single() else {
        return;
    };
    if !matches!(window.mode, WindowMode::BorderlessFullscreen(_)) {
        return;
    }
    let list: Vec<_> = monitors.iter().collect();
    let chosen = show
        .monitor
        .and_then(|n| list.get(n))
        .or_else(|| list.iter().find(|(_, primary)| *primary))
        .or(list.first());
    let Some((monitor, _)) = chosen else { return };
    let size = UVec2::new(monitor.physical_width, monitor.physical_height);
    if window.physical_size() != size
        && let Ok(mut window) = windows.single_mut()
    {
        // The size to go back to when fullscreen is left (F11).
        show.windowed_size.get_or_insert(window.physical_size());
        window.resolution.set_physical_resolution(size.x, size.y);
        window.position = WindowPosition::At(monitor.physical_position);
    }
}
