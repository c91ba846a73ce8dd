//! Keeps the show to its [`Schedule`]: out of hours the picture fades to black and then
//! every source closes (the `--url` video and the layers: no request reaches them, no
//! Daydream output is played); when hours begin they open again and the picture fades in
//! at the first new frame. The state and the next change are published as
//! [`ScheduleStatus`] for the status line, `--stats-json` and the HTTP API.

use std::time::{Duration, Instant};

use bevy::prelude::*;
use jiff::Zoned;
use tracing::info;

use super::{Schedule, ScheduleConfig, day_name};
use crate::compositor::layers::{LayerRequest, Layers};
use crate::effects::MasterLevel;
use crate::video::{FramePresented, RedrawCanvas, SourceSwitch};

/// How often the wall clock is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// How long the picture stays black before the sources close: a few frames, so the
/// outputs' last frame before the closed hours is black too, not the fade's last step.
const BLACK_BEFORE_CLOSING: Duration = Duration::from_millis(250);

/// Whether the show is in hours, and when that changes next.
#[derive(Resource, Debug, Clone)]
pub struct ScheduleStatus {
    /// In hours.
    pub on: bool,
    /// The next opening or closing, local time; `None` when there is none.
    pub next_change: Option<Zoned>,
}

impl ScheduleStatus {
    fn at(schedule: &Schedule, now: &Zoned) -> ScheduleStatus {
        ScheduleStatus {
            on: schedule.is_on(now.datetime()),
            next_change: schedule.next_change(now),
        }
    }

    /// `"on"` or `"off"`.
    pub fn state(&self) -> &'static str {
        if self.on { "on" } else { "off" }
    }

    /// The next change as RFC 3339 with the local offset (`2026-12-07T09:00:00+01:00`).
    pub fn next_change_rfc3339(&self) -> Option<String> {
        self.next_change
            .as_ref()
            .map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
    }

    /// For the status line: `"off until mon 09:00"`, `"on until 18:00"`.
    pub fn words(&self) -> String {
        match &self.next_change {
            Some(next) => format!(
                "{} until {} {}",
                self.state(),
                day_name(next.weekday()),
                next.strftime("%H:%M:%S")
            ),
            None => self.state().to_string(),
        }
    }
}

/// Whether a show following `config` starts in hours (its sources open at once).
pub fn starts_open(config: &ScheduleConfig) -> bool {
    config.hours.is_on(Zoned::now().datetime())
}

/// Where the show is on its way between hours and closed.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// In hours, sources open.
    Open,
    /// Out of hours, fading to black; the sources close when it is black.
    Closing,
    /// Out of hours, sources closed.
    Closed,
    /// In hours again, sources opening; fades in at their first frame.
    Opening,
}

/// Follows `--schedule`.
pub struct SchedulePlugin {
    /// The hours and the fades.
    pub config: ScheduleConfig,
    /// Whether the sources were opened at start ([`starts_open`]); if the hours changed
    /// since, the first update acts on it.
    pub opened: bool,
}

#[derive(Resource)]
struct Hours {
    schedule: Schedule,
    fade: Duration,
    checked: Option<Instant>,
    /// Since when the fade out is at black.
    black_since: Option<Instant>,
}

impl Plugin for SchedulePlugin {
    fn build(&self, app: &mut App) {
        let status = ScheduleStatus::at(&self.config.hours, &Zoned::now());
        info!("schedule: {}", status.words());
        app.insert_resource(Gate::from_start(self.opened))
            .insert_resource(status)
            .insert_resource(Hours {
                schedule: self.config.hours.clone(),
                fade: self.config.fade,
                checked: None,
                black_since: None,
            })
            .add_systems(Startup, start_dark)
            .add_systems(
                Update,
                (watch_clock, follow_hours)
                    .chain()
                    .before(crate::video::VideoSystems::Present),
            );
    }
}

impl Gate {
    fn from_start(on: bool) -> Gate {
        if on { Gate::Open } else { Gate::Closed }
    }
}

/// A show that starts out of hours starts black (its sources were never opened).
fn start_dark(gate: Res<Gate>, mut master: ResMut<MasterLevel>) {
    if *gate == Gate::Closed {
        master.schedule = 0.0;
    }
}

/// Looks at the wall clock a few times a second (a schedule's second is the finest step).
fn watch_clock(mut hours: ResMut<Hours>, mut status: ResMut<ScheduleStatus>) {
    let now = Instant::now();
    if hours.checked.is_some_and(|t| now - t < CHECK_EVERY) {
        return;
    }
    hours.checked = Some(now);
    let next = ScheduleStatus::at(&hours.schedule, &Zoned::now());
    if next.on != status.on {
        info!("schedule: {}", next.words());
    }
    if next.on != status.on || next.next_change != status.next_change {
        *status = next;
    }
}

/// Fades, closes and reopens the sources as the hours say.
#[expect(
    clippy::too_many_arguments,
    reason = "a Bevy system: each argument is a query or resource it reads"
)]
fn follow_hours(
    status: Res<ScheduleStatus>,
    mut hours: ResMut<Hours>,
    mut gate: ResMut<Gate>,
    mut master: ResMut<MasterLevel>,
    mut redraw: ResMut<RedrawCanvas>,
    time: Res<Time<Real>>,
    mut switch: MessageWriter<SourceSwitch>,
    mut layers: Option<ResMut<Layers>>,
    mut presented: MessageReader<FramePresented>,
) {
    let shown = presented.read().count() > 0;
    let mut close = |switch: &mut MessageWriter<SourceSwitch>| {
        switch.write(SourceSwitch::Close);
        if let Some(layers) = layers.as_mut() {
            layers.request(LayerRequest::CloseSources);
        }
    };
    let next = match (*gate, status.on) {
        (Gate::Open, false) => {
            info!("out of hours: fading to black, then closing the sources");
            Gate::Closing
        }
        (Gate::Closing, true) => {
            hours.black_since = None;
            Gate::Open
        }
        (Gate::Closing, false) if master.schedule <= 0.0 => {
            let black = *hours.black_since.get_or_insert_with(Instant::now);
            if black.elapsed() < BLACK_BEFORE_CLOSING {
                Gate::Closing
            } else {
                hours.black_since = None;
                close(&mut switch);
                Gate::Closed
            }
        }
        (Gate::Closed, true) => {
            switch.write(SourceSwitch::Reopen);
            if let Some(layers) = layers.as_mut() {
                layers.request(LayerRequest::ReopenSources);
            }
            Gate::Opening
        }
        (Gate::Opening, false) => {
            close(&mut switch);
            Gate::Closed
        }
        (Gate::Opening, true) if shown => {
            info!("in hours: the source is back; fading in");
            Gate::Open
        }
        (gate, _) => gate,
    };
    *gate = next;
    let target = if next == Gate::Open { 1.0 } else { 0.0 };
    if master.schedule != target {
        let step = time.delta_secs() / hours.fade.as_secs_f32().max(1e-3);
        master.schedule = if master.schedule < target {
            (master.schedule + step).min(target)
        } else {
            (master.schedule - step).max(target)
        };
        // A fade moves while no new frame comes (a stalled or frozen show still fades).
        redraw.0 = true;
    }
}
