//! The release timeline: the procedure's milestones at offsets from T-0 with the owning role.
//! Four tick themselves from evidence — the checklist complete, a verified backup made for the
//! release, its run started, its run passed (health and rollout probe) —; a person of the
//! owning role marks the others done or skipped.

use crate::auth::Role;

/// Where a milestone's evidence comes from, if it has any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    ChecklistComplete,
    VerifiedBackup,
    RunStarted,
    RunPassed,
}

pub struct TemplateMilestone {
    pub key: &'static str,
    pub offset_minutes: i64,
    pub action: &'static str,
    pub role: Role,
    pub notes: &'static str,
    pub evidence: Option<Evidence>,
}

const fn step(
    key: &'static str,
    offset_minutes: i64,
    action: &'static str,
    role: Role,
    notes: &'static str,
    evidence: Option<Evidence>,
) -> TemplateMilestone {
    TemplateMilestone {
        key,
        offset_minutes,
        action,
        role,
        notes,
        evidence,
    }
}

/// The release procedure's deployment timeline (tech lead: approver; developers, DevOps, QA:
/// operator).
pub const TEMPLATE: &[TemplateMilestone] = &[
    step(
        "announce",
        -24 * 60,
        "Announce the deployment window",
        Role::Approver,
        "Notify all stakeholders",
        None,
    ),
    step(
        "final-review",
        -2 * 60,
        "Final code review",
        Role::Operator,
        "Verify all changes are merged",
        None,
    ),
    step(
        "checklist",
        -60,
        "Pre-deployment checklist",
        Role::Operator,
        "Complete all checks",
        Some(Evidence::ChecklistComplete),
    ),
    step(
        "backup",
        -30,
        "Create a backup",
        Role::Operator,
        "Verify its integrity",
        Some(Evidence::VerifiedBackup),
    ),
    step(
        "notify-start",
        -15,
        "Tell the team the deployment starts",
        Role::Operator,
        "Chat message",
        None,
    ),
    step(
        "deploy",
        0,
        "Execute the deployment",
        Role::Operator,
        "The release's run",
        Some(Evidence::RunStarted),
    ),
    step(
        "verify-now",
        5,
        "Immediate verification",
        Role::Operator,
        "Health checks",
        Some(Evidence::RunPassed),
    ),
    step(
        "verify-flows",
        15,
        "Functional verification",
        Role::Operator,
        "Test the key flows",
        None,
    ),
    step(
        "decision",
        30,
        "All-clear or rollback decision",
        Role::Approver,
        "Confirm success",
        None,
    ),
    step(
        "monitor",
        60,
        "Post-deployment monitoring",
        Role::Operator,
        "Watch the metrics",
        None,
    ),
    step(
        "close",
        24 * 60,
        "Close the deployment",
        Role::Approver,
        "Final verification",
        None,
    ),
];

pub fn evidence_of(key: &str) -> Option<Evidence> {
    TEMPLATE
        .iter()
        .find(|m| m.key == key)
        .and_then(|m| m.evidence)
}

/// `T-24h`, `T-30m`, `T-0`, `T+1h`.
pub fn offset_label(minutes: i64) -> String {
    let sign = if minutes < 0 { "-" } else { "+" };
    let magnitude = minutes.abs();
    match magnitude {
        0 => "T-0".to_owned(),
        m if m % 60 == 0 => format!("T{sign}{}h", m / 60),
        m => format!("T{sign}{m}m"),
    }
}

/// Seconds since 1970 of a stored time (`2026-12-01T14:00:00.000Z`); `None` for anything else.
pub fn epoch_seconds(text: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Where a time falls on the chart: milestones sit at even steps (their offsets range from
/// minutes to a day), a time between two is placed between them in proportion.
pub fn position(planned: &[i64], at: i64, (left, step): (f64, f64)) -> f64 {
    let Some(first) = planned.first() else {
        return left;
    };
    if at <= *first {
        return (left - (*first - at) as f64 / 3600.0 * 2.0).max(left / 2.0);
    }
    for (index, pair) in planned.windows(2).enumerate() {
        if at <= pair[1] {
            let span = (pair[1] - pair[0]).max(1) as f64;
            return left + step * (index as f64 + (at - pair[0]) as f64 / span);
        }
    }
    let last = planned.len() as f64 - 1.0;
    left + step * last + ((at - planned[planned.len() - 1]) as f64 / 3600.0 * 2.0).min(left / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_read_as_epoch_seconds() {
        assert_eq!(epoch_seconds("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            epoch_seconds("2026-12-01T14:00:00.000Z"),
            Some(1_796_133_600)
        );
        assert_eq!(epoch_seconds("2024-02-29T00:00:01Z"), Some(1_709_164_801));
        assert_eq!(epoch_seconds("not a time"), None);
    }

    #[test]
    fn a_time_between_two_milestones_is_placed_between_them() {
        let planned = [0, 3600, 7200];
        assert_eq!(position(&planned, 1800, (60.0, 100.0)), 110.0);
        assert_eq!(position(&planned, 7200, (60.0, 100.0)), 260.0);
        assert!(position(&planned, -36_000, (60.0, 100.0)) >= 30.0);
        assert!(position(&planned, 1_000_000, (60.0, 100.0)) <= 290.0);
        assert_eq!(offset_label(-24 * 60), "T-24h");
        assert_eq!(offset_label(-30), "T-30m");
        assert_eq!(offset_label(0), "T-0");
        assert_eq!(offset_label(90), "T+90m");
    }
}
