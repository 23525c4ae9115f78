//! Deploy windows: the days and hours (in the stack's time zone) in which changes run, and
//! freeze periods in which they do not. A pure reading of the policy's text, table-tested.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::ReleasePolicy;

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

struct Freeze {
    from: Timestamp,
    to: Timestamp,
    text: String,
}

/// A policy's window, read and checked.
pub struct Window {
    zone: TimeZone,
    zone_name: String,
    /// Allowed weekdays, Monday first.
    days: [bool; 7],
    hours: Option<(Time, Time)>,
    freezes: Vec<Freeze>,
    described: String,
}

fn day_index(name: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|(short, _)| name.trim().to_ascii_lowercase().starts_with(short))
        .filter(|_| name.trim().len() >= 3)
        .ok_or_else(|| format!("{name:?} is not a day (mon, tue, … sun)"))
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    if text.trim().is_empty() {
        return Ok([true; 7]);
    }
    let mut days = [false; 7];
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day_index(from)?, day_index(to)?);
                let mut day = from;
                loop {
                    days[day] = true;
                    if day == to {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
            None => days[day_index(part)?] = true,
        }
    }
    Ok(days)
}

fn parse_time(text: &str) -> Result<Time, String> {
    text.trim()
        .parse::<Time>()
        .map_err(|_| format!("{:?} is not a time such as 09:00", text.trim()))
}

fn parse_hours(text: &str) -> Result<Option<(Time, Time)>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let (from, to) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?} is not hours such as 09:00-17:00"))?;
    Ok(Some((parse_time(from)?, parse_time(to)?)))
}

/// `2026-12-20` (with `end`: the day's end) or `2026-12-20 18:00`, in `zone`; words after it
/// are the freeze's reason.
fn parse_moment(words: &[&str], zone: &TimeZone, end: bool) -> Result<Timestamp, String> {
    let date: Date = words
        .first()
        .and_then(|word| word.parse().ok())
        .ok_or_else(|| {
            format!(
                "{:?} is not a date such as 2026-12-20",
                words.first().unwrap_or(&"")
            )
        })?;
    let civil = match words.get(1).and_then(|word| word.parse::<Time>().ok()) {
        Some(time) => DateTime::from_parts(date, time),
        None if end => date
            .tomorrow()
            .map_err(|error| error.to_string())?
            .to_datetime(Time::midnight()),
        None => date.to_datetime(Time::midnight()),
    };
    Ok(civil
        .to_zoned(zone.clone())
        .map_err(|error| error.to_string())?
        .timestamp())
}

fn parse_freezes(text: &str, zone: &TimeZone) -> Result<Vec<Freeze>, String> {
    let mut freezes = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let (from, rest) = line.split_once(" to ").ok_or_else(|| {
            format!("{line:?} is not FROM to TO [why], e.g. 2026-12-20 to 2027-01-02 holidays")
        })?;
        let from_words: Vec<&str> = from.split_whitespace().collect();
        let from_at = parse_moment(&from_words, zone, false)?;
        let rest_words: Vec<&str> = rest.split_whitespace().collect();
        let to_at = parse_moment(&rest_words, zone, true)?;
        if to_at <= from_at {
            return Err(format!("{line:?} ends before it begins"));
        }
        freezes.push(Freeze {
            from: from_at,
            to: to_at,
            text: line.to_owned(),
        });
    }
    Ok(freezes)
}

impl Window {
    pub fn of(policy: &ReleasePolicy) -> Result<Window, String> {
        let zone_name = if policy.time_zone.trim().is_empty() {
            "UTC".to_owned()
        } else {
            policy.time_zone.trim().to_owned()
        };
        let zone = TimeZone::get(&zone_name)
            .map_err(|_| format!("{zone_name:?} is not a time zone such as Europe/Berlin"))?;
        let days = parse_days(&policy.days)?;
        let hours = parse_hours(&policy.hours)?;
        let freezes = parse_freezes(&policy.freezes, &zone)?;
        let described = format!(
            "{} {} {zone_name}",
            if policy.days.trim().is_empty() {
                "every day"
            } else {
                policy.days.trim()
            },
            if policy.hours.trim().is_empty() {
                "all day"
            } else {
                policy.hours.trim()
            },
        );
        Ok(Window {
            zone,
            zone_name,
            days,
            hours,
            freezes,
            described,
        })
    }

    /// Why a change may not run at `at`; `None` inside the window.
    pub fn refusal(&self, at: Timestamp) -> Option<String> {
        if let Some(freeze) = self.freezes.iter().find(|f| f.from <= at && at < f.to) {
            return Some(format!("in the freeze {}", freeze.text));
        }
        let local = at.to_zoned(self.zone.clone());
        let weekday = local.weekday().to_monday_zero_offset() as usize;
        let time = local.time();
        let in_hours = self.hours.is_none_or(|(from, to)| {
            if from <= to {
                from <= time && time < to
            } else {
                // Over midnight: 22:00-02:00.
                time >= from || time < to
            }
        });
        (!self.days[weekday] || !in_hours).then(|| {
            format!(
                "outside the deploy window ({}): it is {} {} in {}",
                self.described,
                DAYS[weekday].0,
                local.strftime("%H:%M"),
                self.zone_name
            )
        })
    }
}

/// Why a change may not run now (or at `at`, a stored time) under `policy`; `None` when it
/// may. A policy that no longer reads (checked when it was set) refuses: it fails closed.
pub fn refusal(policy: &ReleasePolicy, at: Option<&str>) -> Option<String> {
    let window = match Window::of(policy) {
        Ok(window) => window,
        Err(error) => {
            return Some(format!(
                "under a deploy window that cannot be read ({error})"
            ))
        }
    };
    let at = match at {
        Some(text) => text.parse::<Timestamp>().ok()?,
        None => Timestamp::now(),
    };
    window.refusal(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(days: &str, hours: &str, freezes: &str) -> ReleasePolicy {
        ReleasePolicy {
            releases_only: false,
            time_zone: "Europe/Berlin".into(),
            days: days.into(),
            hours: hours.into(),
            freezes: freezes.into(),
            public_url: String::new(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn days_and_hours_are_read_in_the_stack_time_zone() {
        let window = Window::of(&policy("mon-fri", "09:00-17:00", "")).unwrap();
        // Tuesday 2026-12-01 09:30 in Berlin is 08:30 UTC.
        assert_eq!(window.refusal(at("2026-12-01T08:30:00Z")), None);
        let early = window.refusal(at("2026-12-01T07:30:00Z")).unwrap();
        assert!(
            early.contains("it is tue 08:30 in Europe/Berlin"),
            "{early}"
        );
        let saturday = window.refusal(at("2026-12-05T10:00:00Z")).unwrap();
        assert!(saturday.contains("it is sat"), "{saturday}");
        let wrapped = Window::of(&policy("fri-mon", "22:00-02:00", "")).unwrap();
        assert_eq!(
            wrapped.refusal(at("2026-12-06T00:30:00Z")),
            None,
            "sunday 01:30"
        );
        assert!(
            wrapped.refusal(at("2026-12-02T00:30:00Z")).is_some(),
            "wednesday"
        );
    }

    #[test]
    fn a_freeze_refuses_whatever_the_window_says() {
        let window = Window::of(&policy(
            "",
            "",
            "2026-12-20 to 2027-01-02 holidays\n2026-12-10 18:00 to 2026-12-11 06:00 audit",
        ))
        .unwrap();
        let frozen = window.refusal(at("2027-01-02T12:00:00Z")).unwrap();
        assert!(frozen.contains("holidays"), "{frozen}");
        assert_eq!(window.refusal(at("2027-01-03T00:00:00Z")), None);
        assert!(window.refusal(at("2026-12-10T18:30:00Z")).is_some());
        assert_eq!(window.refusal(at("2026-12-11T06:30:00Z")), None);
    }

    #[test]
    fn a_policy_that_cannot_be_read_says_what_is_wrong() {
        let bad = |days: &str, hours: &str, freezes: &str| {
            Window::of(&policy(days, hours, freezes)).err().unwrap()
        };
        assert!(bad("mo-xx", "", "").contains("is not a day"));
        assert!(bad("", "9-5", "").contains("is not a time"));
        assert!(bad("", "", "2026-12-20 holidays").contains("FROM to TO"));
        assert!(bad("", "", "2026-12-20 to 2026-12-01").contains("ends before it begins"));
        let zone = ReleasePolicy {
            time_zone: "Mars/Olympus".into(),
            ..policy("", "", "")
        };
        assert!(Window::of(&zone)
            .err()
            .unwrap()
            .contains("is not a time zone"));
    }
}
