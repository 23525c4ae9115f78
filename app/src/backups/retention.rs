//! The retention rule: which backups a prune keeps, each with its reason, and which it
//! deletes. A pure function of the inventory, the policy, the protected backups and now.

use chrono::{DateTime, Datelike, Utc};

use super::{Backup, BackupPolicy};

/// What a prune does with one backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Kept, and why (the first rule that keeps it).
    Keep(String),
    Delete,
}

/// The verdict on each backup of one stack, in the order given (newest first).
/// `protected` maps a backup id to why something else needs it (a release, the
/// last-known-good).
pub fn judge(
    backups: &[Backup],
    policy: &BackupPolicy,
    protected: &std::collections::HashMap<String, String>,
    now: DateTime<Utc>,
) -> Vec<(String, Verdict)> {
    let mut newest_first: Vec<(&Backup, Option<DateTime<Utc>>)> = backups
        .iter()
        .map(|backup| (backup, finished(backup)))
        .collect();
    newest_first.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    let newest_verified = newest_first
        .iter()
        .find(|(backup, _)| backup.verification == "verified")
        .map(|(backup, _)| backup.id.clone());
    // The keeper of each day and week: its newest verified backup, else its newest.
    let mut days = std::collections::HashMap::new();
    let mut weeks = std::collections::HashMap::new();
    for (backup, at) in &newest_first {
        let Some(at) = at else { continue };
        for keeper in [
            days.entry(at.date_naive()),
            weeks.entry(at.date_naive().week(chrono::Weekday::Mon).first_day()),
        ] {
            let current = keeper.or_insert(*backup);
            if current.verification != "verified" && backup.verification == "verified" {
                *current = *backup;
            }
        }
    }
    let mut verdicts = std::collections::HashMap::new();
    for (position, (backup, at)) in newest_first.iter().enumerate() {
        let mut reasons = Vec::new();
        if let Some(why) = protected.get(&backup.id) {
            reasons.push(why.clone());
        }
        if newest_verified.as_deref() == Some(backup.id.as_str()) {
            reasons.push("the newest verified backup".to_owned());
        }
        if (position as i64) < policy.keep_last {
            reasons.push(format!("one of the newest {}", policy.keep_last));
        }
        match at {
            // A date that cannot be read is never a reason to delete.
            None => reasons.push("its date cannot be read".to_owned()),
            Some(at) => {
                let age_days = (now.date_naive() - at.date_naive()).num_days();
                let day = at.date_naive();
                let week = day.week(chrono::Weekday::Mon).first_day();
                let keeps = |keepers: &std::collections::HashMap<_, &Backup>, key| {
                    keepers
                        .get(&key)
                        .is_some_and(|keeper| keeper.id == backup.id)
                };
                if age_days < policy.keep_daily && keeps(&days, day) {
                    reasons.push(format!("the newest of {day}"));
                }
                if age_days / 7 < policy.keep_weekly && keeps(&weeks, week) {
                    let iso = at.iso_week();
                    reasons.push(format!(
                        "the newest of week {} of {}",
                        iso.week(),
                        iso.year()
                    ));
                }
            }
        }
        let verdict = match reasons.into_iter().next() {
            Some(reason) => Verdict::Keep(reason),
            None => Verdict::Delete,
        };
        verdicts.insert(backup.id.clone(), verdict);
    }
    backups
        .iter()
        .map(|backup| {
            let verdict = verdicts.remove(&backup.id).unwrap_or(Verdict::Delete);
            (backup.id.clone(), verdict)
        })
        .collect()
}

fn finished(backup: &Backup) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&backup.finished_at)
        .ok()
        .map(|at| at.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn backup(id: &str, finished_at: &str, verification: &str) -> Backup {
        Backup {
            id: id.into(),
            finished_at: finished_at.into(),
            verification: verification.into(),
            ..Backup::default()
        }
    }

    fn policy(keep_last: i64, keep_daily: i64, keep_weekly: i64) -> BackupPolicy {
        BackupPolicy {
            keep_last,
            keep_daily,
            keep_weekly,
            ..BackupPolicy::default()
        }
    }

    fn kept(verdicts: &[(String, Verdict)]) -> Vec<&str> {
        verdicts
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Keep(_)))
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// Four backups a day, every six hours, for 60 days before Sunday 2026-11-29 12:00.
    fn history() -> Vec<Backup> {
        let now = now();
        (0..240)
            .map(|i| {
                let at = now - chrono::Duration::hours(6 * i + 1);
                backup(
                    &format!("b{i:03}"),
                    &at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
                    "unverified",
                )
            })
            .collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_newest_n_then_one_a_day_then_one_a_week() {
        let verdicts = judge(&history(), &policy(3, 3, 3), &HashMap::new(), now());
        // b000..b002: the newest three (29th 11:00, 05:00, 28th 23:00). One a day for 3
        // days (29th, 28th, 27th): b000, b002, b006. One a week for 3 weeks (ISO weeks 48,
        // 47, 46): b000 (week 48 runs 23rd-29th), b026 (22nd 17:00), b054 (15th 17:00).
        assert_eq!(
            kept(&verdicts),
            ["b000", "b001", "b002", "b006", "b026", "b054"]
        );
        let reason = |id: &str| {
            verdicts
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(reason("b000"), Verdict::Keep("one of the newest 3".into()));
        assert_eq!(
            reason("b006"),
            Verdict::Keep("the newest of 2026-11-27".into())
        );
        assert_eq!(
            reason("b026"),
            Verdict::Keep("the newest of week 47 of 2026".into())
        );
        assert_eq!(reason("b007"), Verdict::Delete);
    }

    #[test]
    fn protected_and_the_newest_verified_survive_any_rule() {
        let mut history = history();
        history[200].verification = "verified".into();
        history[100].verification = "verified".into();
        let protected = HashMap::from([(
            "b230".to_owned(),
            "the backup before the last-known-good".to_owned(),
        )]);
        let verdicts = judge(&history, &policy(1, 0, 0), &protected, now());
        assert_eq!(kept(&verdicts), ["b000", "b100", "b230"]);
        assert_eq!(
            verdicts[230].1,
            Verdict::Keep("the backup before the last-known-good".into())
        );
        assert_eq!(
            verdicts[100].1,
            Verdict::Keep("the newest verified backup".into())
        );
    }

    #[test]
    fn a_day_and_a_week_keep_their_newest_verified_backup_over_a_newer_failed_one() {
        let backups = [
            backup("failed-late", "2026-11-28T22:00:00.000Z", "failed"),
            backup("verified-early", "2026-11-28T02:00:00.000Z", "verified"),
            backup(
                "unverified-earlier",
                "2026-11-28T01:00:00.000Z",
                "unverified",
            ),
        ];
        let verdicts = judge(&backups, &policy(0, 3, 1), &HashMap::new(), now());
        assert_eq!(kept(&verdicts), ["verified-early"]);
        assert_eq!(
            verdicts[1].1,
            Verdict::Keep("the newest verified backup".into())
        );
    }

    #[test]
    fn nothing_is_kept_by_a_rule_of_zeros_and_an_unreadable_date_is_kept() {
        let backups = [
            backup("a", "2026-11-28T10:00:00.000Z", "failed"),
            backup("b", "yesterday", "unverified"),
        ];
        let verdicts = judge(&backups, &policy(0, 0, 0), &HashMap::new(), now());
        assert_eq!(verdicts[0], ("a".into(), Verdict::Delete));
        assert_eq!(
            verdicts[1],
            ("b".into(), Verdict::Keep("its date cannot be read".into()))
        );
    }
}
