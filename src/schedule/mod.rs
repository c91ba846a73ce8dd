//! `--schedule`: the hours a show is open, in local time ("mon-fri 09:00-18:00, sat
//! 10:00-16:00"). Pure logic: parsing (a bad part is named), whether a moment is in
//! hours, and when that next changes. [`plugin`] acts on it (fading out and closing the
//! sources out of hours, reopening and fading in when hours begin).
//!
//! - Entries are separated by commas; each is `[DAYS] HH:MM[:SS]-HH:MM[:SS]`.
//! - `DAYS` is a day (`mon`, `monday`, ...) or a range of days (`mon-fri`, `fri-mon`),
//!   the range wrapping over Sunday; without it, the entry is every day.
//! - An end before the start runs past midnight (`fri 22:00-02:00` ends on Saturday); an
//!   end of `24:00` is midnight.

pub mod plugin;

use std::fmt;

use jiff::Zoned;
use jiff::civil::{DateTime, Weekday};

/// How far ahead [`Schedule::next_change`] looks: past the longest gap a weekly
/// schedule can have.
const LOOK_AHEAD_DAYS: i16 = 8;

/// `--schedule` as the show follows it.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// The hours.
    pub hours: Schedule,
    /// How long the fades out and in take (`--fade`).
    pub fade: std::time::Duration,
}

/// Opening hours, in local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    entries: Vec<Entry>,
}

/// One entry: on the given days, from `start` to `end` (seconds into the day; an `end` not
/// after `start` runs into the next day).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Monday first.
    days: [bool; 7],
    start: u32,
    end: u32,
}

/// A part of a schedule that does not parse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleError {
    /// The entry (between commas) at fault, as written.
    pub part: String,
    /// What is wrong with it.
    pub why: String,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in \"{}\": {}", self.part, self.why)
    }
}

impl std::error::Error for ScheduleError {}

const DAY_NAMES: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

impl Schedule {
    /// Parses `"mon-fri 09:00-18:00, sat 10:00-16:00"`; an error names the entry at fault.
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        let mut entries = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            let fail = |why: String| ScheduleError {
                part: part.to_string(),
                why,
            };
            if part.is_empty() {
                return Err(fail(
                    "an empty entry (a stray comma?); write [DAYS] HH:MM-HH:MM".into(),
                ));
            }
            let words: Vec<&str> = part.split_whitespace().collect();
            let (days, hours) = match words.as_slice() {
                [hours] => ([true; 7], *hours),
                [days, hours] => (parse_days(days).map_err(fail)?, *hours),
                _ => {
                    return Err(fail(
                        "expected [DAYS] HH:MM-HH:MM, such as \"mon-fri 09:00-18:00\"".into(),
                    ));
                }
            };
            let (start, end) = hours.split_once('-').ok_or_else(|| {
                fail(format!(
                    "\"{hours}\" is not a span of hours (HH:MM-HH:MM, such as 09:00-18:00)"
                ))
            })?;
            let start = parse_time(start, false).map_err(fail)?;
            let end = parse_time(end, true).map_err(fail)?;
            if start == end {
                return Err(fail(format!(
                    "\"{hours}\" starts and ends at the same time; a whole day is 00:00-24:00"
                )));
            }
            entries.push(Entry { days, start, end });
        }
        Ok(Schedule { entries })
    }

    /// True when `at` (local civil time) is in hours.
    pub fn is_on(&self, at: DateTime) -> bool {
        let day = usize::from(at.weekday().to_monday_zero_offset() as u8);
        let yesterday = (day + 6) % 7;
        let second = u32::from(at.hour() as u8) * 3600
            + u32::from(at.minute() as u8) * 60
            + u32::from(at.second() as u8);
        self.entries.iter().any(|e| {
            if e.end > e.start {
                e.days[day] && (e.start..e.end).contains(&second)
            } else {
                (e.days[day] && second >= e.start) || (e.days[yesterday] && second < e.end)
            }
        })
    }

    /// The first moment after `now` at which [`is_on`](Self::is_on) changes, in `now`'s
    /// time zone; `None` when it never does (every day 00:00-24:00).
    pub fn next_change(&self, now: &Zoned) -> Option<Zoned> {
        let on = self.is_on(now.datetime());
        let today = now.date();
        let mut boundaries: Vec<Zoned> = Vec::new();
        for offset in -1..=LOOK_AHEAD_DAYS {
            let Ok(date) = today.checked_add(jiff::Span::new().days(offset)) else {
                continue;
            };
            let day = usize::from(date.weekday().to_monday_zero_offset() as u8);
            for e in self.entries.iter().filter(|e| e.days[day]) {
                let start = date.to_datetime(jiff::civil::Time::midnight());
                let end_day = if e.end > e.start { 0 } else { 1 };
                for (days, second) in [(0, e.start), (end_day, e.end)] {
                    let at =
                        start.checked_add(jiff::Span::new().days(days).seconds(i64::from(second)));
                    // A moment a clock change skips is taken as the one after it.
                    if let Ok(zoned) = at.and_then(|at| at.to_zoned(now.time_zone().clone())) {
                        boundaries.push(zoned);
                    }
                }
            }
        }
        boundaries.sort();
        boundaries
            .into_iter()
            .filter(|b| b > now)
            .find(|b| self.is_on(b.datetime()) != on)
    }
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let day = |name: &str| {
        let lower = name.to_ascii_lowercase();
        DAY_NAMES
            .iter()
            .position(|(short, long)| lower == *short || lower == *long)
            .ok_or_else(|| format!("\"{name}\" is not a day (mon, tue, wed, thu, fri, sat, sun)"))
    };
    let mut days = [false; 7];
    match text.split_once('-') {
        Some((from, to)) => {
            let (from, to) = (day(from)?, day(to)?);
            let mut d = from;
            loop {
                days[d] = true;
                if d == to {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        None => days[day(text)?] = true,
    }
    Ok(days)
}

/// `HH:MM` or `HH:MM:SS`, in seconds into the day; `24:00` only as an end.
fn parse_time(text: &str, end: bool) -> Result<u32, String> {
    let bad = || format!("\"{text}\" is not a time of day (HH:MM or HH:MM:SS, 00:00 to 24:00)");
    let fields: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&fields.len()) || fields.iter().any(|f| f.is_empty() || f.len() > 2) {
        return Err(bad());
    }
    let mut values = [0u32; 3];
    for (v, f) in values.iter_mut().zip(&fields) {
        *v = f.parse().map_err(|_| bad())?;
    }
    let [h, m, s] = values;
    if m > 59 || s > 59 || h > 24 || (h == 24 && (m, s) != (0, 0)) {
        return Err(bad());
    }
    if h == 24 && !end {
        return Err(format!("\"{text}\": a span starts at 00:00, not 24:00"));
    }
    Ok(h * 3600 + m * 60 + s)
}

/// The day of a week, as [`Schedule`]'s texts write it (for the status line).
pub fn day_name(day: Weekday) -> &'static str {
    DAY_NAMES[usize::from(day.to_monday_zero_offset() as u8)].0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> DateTime {
        date(y, mo, d).at(h, mi, 0, 0)
    }

    #[test]
    fn weekdays_and_saturday() {
        let s = Schedule::parse("mon-fri 09:00-18:00, sat 10:00-16:00").unwrap();
        // 2026-12-07 is a Monday.
        assert!(s.is_on(at(2026, 12, 7, 9, 0)));
        assert!(s.is_on(at(2026, 12, 7, 17, 59)));
        assert!(!s.is_on(at(2026, 12, 7, 18, 0)));
        assert!(!s.is_on(at(2026, 12, 7, 8, 59)));
        assert!(s.is_on(at(2026, 12, 12, 10, 0)));
        assert!(!s.is_on(at(2026, 12, 12, 16, 0)));
        assert!(!s.is_on(at(2026, 12, 13, 12, 0)), "Sunday is closed");
    }

    #[test]
    fn a_bare_span_is_every_day_and_may_run_past_midnight() {
        let s = Schedule::parse("22:00-02:30").unwrap();
        for day in 7..14 {
            assert!(s.is_on(at(2026, 12, day, 23, 0)));
            assert!(s.is_on(at(2026, 12, day, 2, 29)));
            assert!(!s.is_on(at(2026, 12, day, 2, 30)));
            assert!(!s.is_on(at(2026, 12, day, 12, 0)));
        }
        let fri = Schedule::parse("fri 22:00-02:00").unwrap();
        assert!(fri.is_on(at(2026, 12, 12, 1, 0)), "Saturday morning");
        assert!(!fri.is_on(at(2026, 12, 11, 1, 0)), "not Friday morning");
        let whole = Schedule::parse("sun 00:00-24:00").unwrap();
        assert!(whole.is_on(at(2026, 12, 13, 23, 59)));
        assert!(!whole.is_on(at(2026, 12, 14, 0, 0)));
    }

    #[test]
    fn ranges_wrap_over_sunday_and_names_are_any_case() {
        let s = Schedule::parse("Fri-Mon 10:00-11:00:30").unwrap();
        assert!(s.is_on(at(2026, 12, 13, 10, 0)));
        assert!(s.is_on(at(2026, 12, 14, 11, 0)));
        assert!(!s.is_on(at(2026, 12, 15, 10, 0)));
    }

    #[test]
    fn the_next_change_is_found_across_days() {
        let s = Schedule::parse("mon-fri 09:00-18:00, sat 10:00-16:00").unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        let now = at(2026, 12, 12, 17, 0).to_zoned(tz.clone()).unwrap(); // Saturday
        let next = s.next_change(&now).unwrap();
        assert_eq!(next.datetime(), at(2026, 12, 14, 9, 0));
        let now = at(2026, 12, 8, 12, 0).to_zoned(tz.clone()).unwrap();
        assert_eq!(
            s.next_change(&now).unwrap().datetime(),
            at(2026, 12, 8, 18, 0)
        );
        // Adjacent entries are one opening: no change at their seam.
        let joined = Schedule::parse("10:00-12:00, 12:00-14:00").unwrap();
        let now = at(2026, 12, 8, 11, 0).to_zoned(tz.clone()).unwrap();
        assert_eq!(
            joined.next_change(&now).unwrap().datetime(),
            at(2026, 12, 8, 14, 0)
        );
        let always = Schedule::parse("00:00-24:00").unwrap();
        assert_eq!(always.next_change(&now), None);
    }

    #[test]
    fn a_clock_change_moves_the_opening_not_the_hours() {
        // Europe/Berlin springs forward on 2027-03-28 at 02:00 → 03:00.
        let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let s = Schedule::parse("02:30-05:00").unwrap();
        let now = at(2027, 3, 28, 1, 0).to_zoned(tz).unwrap();
        let next = s.next_change(&now).unwrap();
        assert_eq!(next.datetime(), at(2027, 3, 28, 3, 30));
    }

    #[test]
    fn errors_name_the_part_at_fault() {
        let e = Schedule::parse("mon-fri 09:00-18:00, sta 10:00-16:00").unwrap_err();
        assert_eq!(e.part, "sta 10:00-16:00");
        assert!(e.why.contains("\"sta\" is not a day"), "{e}");
        for (text, part, why) in [
            ("09:00-25:00", "09:00-25:00", "\"25:00\" is not a time"),
            ("9-18", "9-18", "\"9\" is not a time"),
            ("mon 09:00", "mon 09:00", "not a span of hours"),
            ("09:00-09:00", "09:00-09:00", "same time"),
            ("09:00-18:00,", "", "empty entry"),
            (
                "mon fri 09:00-18:00",
                "mon fri 09:00-18:00",
                "expected [DAYS]",
            ),
            ("24:00-02:00", "24:00-02:00", "not 24:00"),
            ("09:60-10:00", "09:60-10:00", "\"09:60\" is not a time"),
        ] {
            let e = Schedule::parse(text).unwrap_err();
            assert_eq!(e.part, part, "{text}");
            assert!(e.why.contains(why), "{text}: {e}");
        }
    }
}
