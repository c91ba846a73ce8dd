//! Where the live edge of an HLS stream is, and when its next segment will be published.
//!
//! A live origin publishes in real time: segment k appears at a fixed wall time after its
//! end in stream time. Lucid only sees a segment when it reloads the playlist, some time
//! after it appeared, and reloading once a segment duration after each change (what RFC
//! 8216 asks) keeps that lateness for the whole run: anywhere from nothing to a whole
//! segment, at random, depending on when the first load happened. Steering by the time a
//! segment was *seen* then plays that much further behind than the target says.
//!
//! So the edge here is estimated from the earliest-looking of the recent sightings (when
//! stream time zero would have been published, taking the smallest of `seen - end`), and
//! [`ReloadPlan`] aims each reload a little before the next segment is expected, backing off
//! to RFC 8216's delays when the estimate says nothing useful. A reload that comes too soon
//! finds the playlist unchanged and looks again shortly after; one that lands and finds the
//! segment already there aims earlier next time. After a few segments reloads land just
//! after publication, and the edge is known to within a fraction of a second (hls.js aligns
//! its reloads with publication in the same spirit, from `Last-Modified`).
//!
//! Kept free of the network and of Bevy so that it can be tested on its own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sightings the edge estimate remembers: about a playlist window's worth, so an origin
/// whose timing drifts is followed.
const SIGHTINGS: usize = 8;

/// The live edge, in the stream time the decoder gives frames (0 = the first frame played).
/// Shared by the network thread (writer) and the presentation clock (reader).
#[derive(Debug, Clone, Default)]
pub struct LiveEdge {
    state: Arc<Mutex<Option<EdgeState>>>,
    /// A playlist load had to be retried: a sighting came late by the retry's delay, not
    /// by the reload phase alone, and the estimate's later corrections are that fault's.
    retried: Arc<AtomicBool>,
}

#[derive(Debug, Clone)]
struct EdgeState {
    /// The newest segment's end.
    end: Duration,
    /// When it was first seen.
    seen_at: Instant,
    /// The longest segment (EXT-X-TARGETDURATION).
    segment: Duration,
    /// The newest segment's own duration: the next one is expected that much later.
    newest: Duration,
    /// When stream time zero was published, by each recent sighting (`seen_at - end`); the
    /// earliest is the least late.
    origins: VecDeque<Instant>,
}

impl EdgeState {
    /// When stream time zero was published, by the least late recent sighting.
    fn origin(&self) -> Option<Instant> {
        self.origins.iter().min().copied()
    }
}

impl LiveEdge {
    /// The live edge now: the stream time publishing has reached, from the least late
    /// recent sighting; never before the newest segment's end, and at most one segment
    /// past it, so an outage does not make the edge run away.
    pub fn now(&self) -> Option<Duration> {
        self.at(Instant::now())
    }

    fn at(&self, now: Instant) -> Option<Duration> {
        let s = self.state.lock().ok()?.clone()?;
        let published = match s.origin() {
            Some(origin) => now.saturating_duration_since(origin),
            None => s.end + now.saturating_duration_since(s.seen_at),
        };
        Some(published.clamp(s.end, s.end + s.segment))
    }

    /// True once a playlist load was retried (a transient error): its sighting was late by
    /// the retry, so a later correction of the edge is the fault's delay, which the clock
    /// steers away by speed rather than by dropping frames.
    pub fn retried(&self) -> bool {
        self.retried.load(Ordering::Relaxed)
    }

    /// Notes a retried playlist load (see [`LiveEdge::retried`]).
    pub(super) fn note_retry(&self) {
        self.retried.store(true, Ordering::Relaxed);
    }

    /// When the segment after the newest one should appear in the playlist.
    pub fn next_publication(&self) -> Option<Instant> {
        let s = self.state.lock().ok()?.clone()?;
        Some(s.origin()? + s.end + s.newest)
    }

    /// Records the newest segment's end (`newest`: its duration; `segment`: the target
    /// duration), as seen at `seen.at`. It only moves forward, unless `rebase` (after a
    /// timeline break, positions and sightings before it no longer apply).
    pub(super) fn update(
        &self,
        end: Duration,
        newest: Duration,
        segment: Duration,
        rebase: bool,
        seen: Sighting,
    ) {
        let seen_at = seen.at;
        let Ok(mut slot) = self.state.lock() else {
            return;
        };
        let mut origins = match slot.take() {
            Some(s) if !rebase && end <= s.end => {
                *slot = Some(s);
                return;
            }
            // The last load did not list it, yet the estimate says it was out by then:
            // the origin publishes later than it did (after an outage, say). The earlier
            // sightings no longer apply.
            Some(s)
                if !rebase
                    && seen
                        .missed_at
                        .zip(s.origin())
                        .is_some_and(|(missed, origin)| origin + end <= missed) =>
            {
                VecDeque::new()
            }
            Some(s) if !rebase => s.origins,
            _ => VecDeque::new(),
        };
        if let Some(origin) = seen_at.checked_sub(end) {
            if origins.len() == SIGHTINGS {
                origins.pop_front();
            }
            origins.push_back(origin);
        }
        *slot = Some(EdgeState {
            end,
            seen_at,
            segment,
            newest,
            origins,
        });
    }

    /// A skipped segment never reaches the timeline: everything after it is that much
    /// earlier in stream time, and stream time zero was published that much later.
    pub(super) fn shift_back(&self, by: Duration) {
        if let Ok(mut slot) = self.state.lock()
            && let Some(s) = slot.as_mut()
        {
            s.end = s.end.saturating_sub(by);
            for origin in &mut s.origins {
                *origin += by;
            }
        }
    }
}

/// When a segment was first listed, and when the load before, which did not list it yet,
/// started (if it was the one before).
#[derive(Debug, Clone, Copy)]
pub struct Sighting {
    /// When the load that listed it returned.
    pub at: Instant,
    /// When the load before started, if that one found nothing new.
    pub missed_at: Option<Instant>,
}

#[cfg(test)]
impl Sighting {
    /// A sighting with no miss before it.
    pub fn at(at: Instant) -> Sighting {
        Sighting {
            at,
            missed_at: None,
        }
    }
}

/// The least a reload aims ahead of the next segment's expected publication.
const MIN_LEAD: Duration = Duration::from_millis(200);
/// After a reload that came too soon, how long until the next look: the lateness this
/// leaves at most, and twice the requests per segment it costs in the steady state.
const RETRY_SOON: Duration = Duration::from_millis(200);
/// The least time between two reloads after a change.
const MIN_GAP: Duration = Duration::from_millis(100);

/// When to reload a live playlist: aimed just before the next segment is expected, with
/// RFC 8216's delays as the latest and as the fallback.
#[derive(Debug, Clone)]
pub struct ReloadPlan {
    /// How far ahead of the expected publication the next reload aims. It doubles while
    /// aimed reloads still find the segment there already (the estimate is late), and
    /// drops back once one comes too soon.
    lead: Duration,
    /// Reloads since the last change that found nothing new.
    misses: u32,
}

impl Default for ReloadPlan {
    fn default() -> Self {
        ReloadPlan {
            lead: MIN_LEAD,
            misses: 0,
        }
    }
}

impl ReloadPlan {
    /// The time of the next reload. `loaded_at`: when the last load started; `rfc_delay`:
    /// RFC 8216's wait after it ([`super::playlist::reload_delay`]); `changed`: it listed a
    /// new segment; `expected`: [`LiveEdge::next_publication`]; `target`: the target
    /// duration.
    pub fn next(
        &mut self,
        now: Instant,
        loaded_at: Instant,
        rfc_delay: Duration,
        changed: bool,
        expected: Option<Instant>,
        target: Duration,
    ) -> Instant {
        let latest = loaded_at + rfc_delay;
        let Some(expected) = expected else {
            return latest;
        };
        if changed {
            // Found at the first look after aiming: the estimate is late by at least the
            // lead, so aim further ahead; after a miss it is close, so aim close.
            self.lead = if self.misses == 0 {
                (self.lead * 2).min(target / 2).max(MIN_LEAD)
            } else {
                MIN_LEAD
            };
            self.misses = 0;
            return expected
                .checked_sub(self.lead)
                .unwrap_or(expected)
                .clamp(loaded_at + MIN_GAP, latest.max(loaded_at + MIN_GAP));
        }
        self.misses += 1;
        // Just too soon: look again shortly. Long past the expected time the origin is
        // late or stalled, and RFC 8216's half-target retries apply.
        if now < expected + target / 2 {
            (now + RETRY_SOON).min(latest)
        } else {
            latest
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: Duration = Duration::from_secs(2);

    /// An origin that publishes segment k (ending at 2(k+1) s of stream time) at
    /// `t0 + 2(k+1) s` (plus `outage` from segment `outage_at` on), reloaded as
    /// `ReloadPlan` says: returns the lateness of each sighting and the number of reloads.
    fn simulate(first_load_late: Duration, segments: u32) -> (Vec<Duration>, u32) {
        simulate_with_outage(first_load_late, segments, u32::MAX, Duration::ZERO)
    }

    fn simulate_with_outage(
        first_load_late: Duration,
        segments: u32,
        outage_at: u32,
        outage: Duration,
    ) -> (Vec<Duration>, u32) {
        let t0 = Instant::now();
        let published = |k: u32| {
            t0 + SEG * (k + 1)
                + if k >= outage_at {
                    outage
                } else {
                    Duration::ZERO
                }
        };
        let edge = LiveEdge::default();
        let mut plan = ReloadPlan::default();
        // The first load: segment 0 is listed, `first_load_late` after it appeared.
        let mut now = published(0) + first_load_late;
        let mut newest = 0;
        let mut late = vec![first_load_late];
        let mut reloads = 1;
        edge.update(SEG, SEG, SEG, false, Sighting::at(now));
        let mut wake = plan.next(now, now, SEG, true, edge.next_publication(), SEG);
        let mut missed_at = None;
        while newest < segments {
            now = wake;
            reloads += 1;
            // The newest segment listed at `now`.
            let listed = (0..=segments + 1)
                .rev()
                .find(|&k| published(k) <= now)
                .unwrap();
            let changed = listed > newest;
            if changed {
                newest = listed;
                late.push(now - published(listed));
                let seen = Sighting { at: now, missed_at };
                edge.update(SEG * (listed + 1), SEG, SEG, false, seen);
            }
            missed_at = (!changed).then_some(now);
            let rfc = if changed { SEG } else { SEG / 2 };
            wake = plan.next(now, now, rfc, changed, edge.next_publication(), SEG);
            assert!(wake > now, "reloads move forward");
        }
        (late, reloads)
    }

    #[test]
    fn reloads_line_up_with_publication_whatever_the_first_load_missed() {
        for first in [0, 150, 700, 1300, 1950] {
            let (late, reloads) = simulate(Duration::from_millis(first), 30);
            let settled = &late[8..];
            assert!(
                settled.iter().all(|l| *l <= RETRY_SOON + MIN_GAP),
                "first load {first} ms late: sightings settle within a retry of publication, {late:?}"
            );
            // Two looks a segment in the steady state, never a flood.
            assert!(
                reloads <= 2 * 30 + 10,
                "first load {first} ms late: {reloads} reloads for 30 segments"
            );
        }
    }

    #[test]
    fn an_origin_that_publishes_later_after_an_outage_is_followed() {
        // From segment 10 on, everything comes 5.3 s later than before.
        let (late, _) = simulate_with_outage(
            Duration::from_millis(100),
            30,
            10,
            Duration::from_millis(5300),
        );
        assert!(
            late[14..].iter().all(|l| *l <= RETRY_SOON + MIN_GAP),
            "after the outage, sightings settle again: {late:?}"
        );
        let edge = LiveEdge::default();
        let t0 = Instant::now();
        edge.update(SEG, SEG, SEG, false, Sighting::at(t0 + SEG));
        // Segment 2 should be out at 4 s; the load at 4.5 s did not list it, the one at
        // 9.5 s did: the earlier sighting no longer applies.
        let seen = Sighting {
            at: t0 + Duration::from_millis(9500),
            missed_at: Some(t0 + Duration::from_millis(4500)),
        };
        edge.update(SEG * 2, SEG, SEG, false, seen);
        assert_eq!(
            edge.at(t0 + Duration::from_millis(9500)).unwrap(),
            SEG * 2,
            "not 4 s past it, as the old sighting would say (clamped to a segment)"
        );
    }

    #[test]
    fn the_edge_comes_from_the_least_late_sighting() {
        let t0 = Instant::now();
        let edge = LiveEdge::default();
        // Segment 1 ends at 2 s and appears at t0 + 2 s, seen 1.5 s late.
        edge.update(
            SEG,
            SEG,
            SEG,
            false,
            Sighting::at(t0 + Duration::from_millis(3500)),
        );
        // The next one is seen 0.1 s late.
        edge.update(
            SEG * 2,
            SEG,
            SEG,
            false,
            Sighting::at(t0 + Duration::from_millis(4100)),
        );
        // Publishing is at 5 s by now; the least late sighting puts it 0.1 s short, where
        // the newest (the earlier rule) would have said 4.9 s too.
        let at = edge.at(t0 + Duration::from_millis(5000)).unwrap();
        assert_eq!(at, Duration::from_millis(4900));
        // The other way round: the late sighting is the newest, and does not count.
        let edge = LiveEdge::default();
        edge.update(
            SEG,
            SEG,
            SEG,
            false,
            Sighting::at(t0 + Duration::from_millis(2100)),
        );
        edge.update(
            SEG * 2,
            SEG,
            SEG,
            false,
            Sighting::at(t0 + Duration::from_millis(5500)),
        );
        assert_eq!(
            edge.at(t0 + Duration::from_millis(5500)).unwrap(),
            Duration::from_millis(5400),
            "not 4 s, as seeing segment 2 1.5 s late would say"
        );
        assert_eq!(
            edge.next_publication().unwrap(),
            t0 + Duration::from_millis(6100)
        );
        // Never before the newest end, never more than a segment past it (an outage).
        assert_eq!(
            edge.at(t0 + Duration::from_secs(60)).unwrap(),
            Duration::from_secs(6)
        );
        // A break starts over: the old sightings no longer apply.
        edge.update(
            Duration::from_secs(1),
            SEG,
            SEG,
            true,
            Sighting::at(t0 + Duration::from_secs(10)),
        );
        assert_eq!(
            edge.at(t0 + Duration::from_millis(10_500)).unwrap(),
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn a_skipped_segment_moves_the_edge_and_its_origin_back() {
        let t0 = Instant::now();
        let edge = LiveEdge::default();
        edge.update(SEG * 3, SEG, SEG, false, Sighting::at(t0 + SEG * 3));
        edge.shift_back(SEG);
        assert_eq!(edge.at(t0 + SEG * 3).unwrap(), SEG * 2);
        assert_eq!(edge.next_publication().unwrap(), t0 + SEG * 4);
    }

    #[test]
    fn a_stalled_origin_is_reloaded_at_rfc_pace() {
        let t0 = Instant::now();
        let mut plan = ReloadPlan::default();
        let expected = t0 + SEG;
        // Long past the expected time: half a target, not every 200 ms.
        let now = t0 + SEG * 3;
        assert_eq!(
            plan.next(now, now, SEG / 2, false, Some(expected), SEG),
            now + SEG / 2
        );
        // Without an estimate, RFC 8216's delay.
        assert_eq!(plan.next(t0, t0, SEG, true, None, SEG), t0 + SEG);
    }
}
