//! A stack's own checklist and timeline templates, which admins edit as text, a line each;
//! the procedure's when a stack has none. A release copies its stack's templates when it is
//! planned, so editing them never changes a release already planned.
//!
//! Checklist: `KEY | Section | Title | manual ROLE | required` (or `automatic`, `optional`).
//! Timeline: `KEY | T-30m | Action | ROLE | Notes` (`evidence` instead of a role for the
//! milestones that tick themselves: checklist, backup, deploy, verify-now).

use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::auth::Role;
use crate::store::{now_utc, Store, StoreError};

use super::checks::TEMPLATE as CHECKLIST;
use super::timeline::{evidence_of, offset_label, TEMPLATE as TIMELINE};
use super::ReleaseError;

/// One checklist item as a template has it.
#[derive(Debug)]
pub struct ItemSpec {
    pub key: String,
    pub section: String,
    pub title: String,
    pub automatic: bool,
    pub required: bool,
    pub role: Role,
}

/// One milestone as a template has it.
#[derive(Debug)]
pub struct MilestoneSpec {
    pub key: String,
    pub offset_minutes: i64,
    pub action: String,
    pub role: Role,
    pub notes: String,
}

/// The procedure's checklist, as an admin edits it.
pub fn default_checklist() -> String {
    CHECKLIST
        .iter()
        .map(|item| {
            format!(
                "{} | {} | {} | {}",
                item.key,
                item.section,
                item.title,
                if item.automatic {
                    "automatic".to_owned()
                } else {
                    format!("manual {}", item.role)
                }
            ) + if item.required {
                " | required"
            } else {
                " | optional"
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The procedure's timeline, as an admin edits it.
pub fn default_timeline() -> String {
    TIMELINE
        .iter()
        .map(|milestone| {
            format!(
                "{} | {} | {} | {} | {}",
                milestone.key,
                offset_label(milestone.offset_minutes),
                milestone.action,
                if milestone.evidence.is_some() {
                    "evidence".to_owned()
                } else {
                    milestone.role.to_string()
                },
                milestone.notes
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn fields(line: &str, count: usize, shape: &str) -> Result<Vec<String>, String> {
    let fields: Vec<String> = line.split('|').map(|f| f.trim().to_owned()).collect();
    if fields.len() != count || fields.iter().take(count - 1).any(String::is_empty) {
        return Err(format!("{line:?} is not {shape}"));
    }
    Ok(fields)
}

fn checked_key(key: &str, seen: &mut Vec<String>) -> Result<(), String> {
    let plain = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c));
    if !plain {
        return Err(format!("{key:?} is not a key (a-z, 0-9, . - _)"));
    }
    if seen.iter().any(|other| other == key) {
        return Err(format!("the key {key} comes twice"));
    }
    seen.push(key.to_owned());
    Ok(())
}

fn checked_text(text: &str) -> Result<(), String> {
    if text.chars().count() > 200 {
        return Err(format!("{text:?} is longer than 200 characters"));
    }
    Ok(())
}

/// Reads a checklist template; an automatic item must be one the console can evaluate.
pub fn parse_checklist(text: &str) -> Result<Vec<ItemSpec>, String> {
    let shape = "KEY | Section | Title | manual ROLE or automatic | required or optional";
    let mut seen = Vec::new();
    let mut items = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let fields = fields(line, 5, shape)?;
        let [key, section, title, kind, need] = &fields[..] else {
            return Err(format!("{line:?} is not {shape}"));
        };
        checked_key(key, &mut seen)?;
        checked_text(section)?;
        checked_text(title)?;
        let (automatic, role) = match kind.split_whitespace().collect::<Vec<_>>()[..] {
            ["automatic"] => {
                if !CHECKLIST
                    .iter()
                    .any(|item| item.automatic && item.key == key)
                {
                    return Err(format!(
                        "the console evaluates no item {key}: automatic items are {}",
                        CHECKLIST
                            .iter()
                            .filter(|item| item.automatic)
                            .map(|item| item.key)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                (true, Role::Operator)
            }
            ["manual", _]
                if CHECKLIST
                    .iter()
                    .any(|item| item.automatic && item.key == key) =>
            {
                return Err(format!(
                    "{key} is the console's to evaluate: a manual item takes another key"
                ))
            }
            ["manual", role] => (false, role.parse::<Role>().map_err(|e| e.to_string())?),
            _ => return Err(format!("{kind:?} is not manual ROLE or automatic")),
        };
        let required = match need.as_str() {
            "required" => true,
            "optional" => false,
            other => return Err(format!("{other:?} is not required or optional")),
        };
        items.push(ItemSpec {
            key: key.clone(),
            section: section.clone(),
            title: title.clone(),
            automatic,
            required,
            role,
        });
    }
    if items.is_empty() {
        return Err("a checklist needs at least one item".into());
    }
    Ok(items)
}

/// `T-24h`, `T-30m`, `T-0`, `T+90m` as minutes from T-0.
fn parse_offset(text: &str) -> Result<i64, String> {
    let wrong = || format!("{text:?} is not an offset such as T-24h, T-30m, T-0 or T+5m");
    let rest = text.strip_prefix("T").ok_or_else(wrong)?;
    if rest == "-0" || rest == "+0" || rest.is_empty() {
        return Ok(0);
    }
    let (sign, magnitude) = if let Some(magnitude) = rest.strip_prefix('-') {
        (-1, magnitude)
    } else if let Some(magnitude) = rest.strip_prefix('+') {
        (1, magnitude)
    } else {
        return Err(wrong());
    };
    let (number, per_unit) = if let Some(number) = magnitude.strip_suffix('m') {
        (number, 1)
    } else if let Some(number) = magnitude.strip_suffix('h') {
        (number, 60)
    } else if let Some(number) = magnitude.strip_suffix('d') {
        (number, 24 * 60)
    } else {
        return Err(wrong());
    };
    // Digits only (no sign of their own), and at most 30 days.
    let number: u32 = number.parse().map_err(|_| wrong())?;
    let minutes = i64::from(number) * per_unit;
    if minutes > 30 * 24 * 60 {
        return Err(format!("{text} is more than 30 days from T-0"));
    }
    Ok(sign * minutes)
}

/// Reads a timeline template; `evidence` is for the milestones that tick themselves.
pub fn parse_timeline(text: &str) -> Result<Vec<MilestoneSpec>, String> {
    let shape = "KEY | T-30m | Action | ROLE or evidence | Notes";
    let mut seen = Vec::new();
    let mut milestones = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let fields = fields(line, 5, shape)?;
        let [key, offset, action, owner, notes] = &fields[..] else {
            return Err(format!("{line:?} is not {shape}"));
        };
        checked_key(key, &mut seen)?;
        checked_text(action)?;
        checked_text(notes)?;
        let offset_minutes = parse_offset(offset)?;
        let role = match (owner.as_str(), evidence_of(key)) {
            ("evidence", Some(_)) => Role::Operator,
            ("evidence", None) => {
                return Err(format!(
                    "{key} has no evidence to tick it: only checklist, backup, deploy and verify-now do"
                ))
            }
            (_, Some(_)) => {
                return Err(format!("{key} ticks itself from evidence: its owner is `evidence`"))
            }
            (role, None) => role.parse::<Role>().map_err(|e| e.to_string())?,
        };
        milestones.push(MilestoneSpec {
            key: key.clone(),
            offset_minutes,
            action: action.clone(),
            role,
            notes: notes.clone(),
        });
    }
    milestones.sort_by_key(|m| m.offset_minutes);
    Ok(milestones)
}

/// The stack's templates as text (the procedure's where it has none of its own).
pub async fn get(store: &Store, stack: &str) -> Result<(String, String), StoreError> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT checklist, timeline FROM release_templates WHERE stack = $1")
            .bind(stack)
            .fetch_optional(store.pool())
            .await?;
    let (checklist, timeline) = row.unwrap_or_default();
    Ok((
        if checklist.is_empty() {
            default_checklist()
        } else {
            checklist
        },
        if timeline.is_empty() {
            default_timeline()
        } else {
            timeline
        },
    ))
}

/// Sets the stack's templates (empty text: the procedure's), each read first; audited.
pub async fn set(
    store: &Store,
    actor: &Actor,
    stack: &str,
    (checklist, timeline): (&str, &str),
) -> Result<(), ReleaseError> {
    if checklist.len() > 20_000 || timeline.len() > 20_000 {
        return Err(ReleaseError::Refused(
            "a template is at most 20,000 characters".into(),
        ));
    }
    if !checklist.trim().is_empty() {
        parse_checklist(checklist)
            .map_err(|why| ReleaseError::Refused(format!("checklist: {why}")))?;
    }
    if !timeline.trim().is_empty() {
        parse_timeline(timeline)
            .map_err(|why| ReleaseError::Refused(format!("timeline: {why}")))?;
    }
    crate::stacks::service::find(store, stack).await?;
    let mut audited = Audited::begin(store).await?;
    sqlx::query("DELETE FROM release_templates WHERE stack = $1")
        .bind(stack)
        .execute(audited.db())
        .await
        .map_err(StoreError::from)?;
    sqlx::query(
        "INSERT INTO release_templates (stack, checklist, timeline, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(stack)
    .bind(checklist.trim())
    .bind(timeline.trim())
    .bind(&actor.name)
    .bind(now_utc())
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    audited
        .append(
            actor,
            "release.templates_set",
            stack,
            json!({ "checklist": checklist.trim(), "timeline": timeline.trim() }),
        )
        .await?;
    Ok(audited.commit().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_procedure_reads_back_from_its_own_text() {
        let items = parse_checklist(&default_checklist()).unwrap();
        assert_eq!(items.len(), CHECKLIST.len());
        assert!(items
            .iter()
            .any(|i| i.key == "review.approved" && i.role == Role::Approver));
        let milestones = parse_timeline(&default_timeline()).unwrap();
        assert_eq!(milestones.len(), TIMELINE.len());
        assert_eq!(milestones[0].offset_minutes, -24 * 60);
    }

    #[test]
    fn a_team_writes_its_own_and_mistakes_are_named() {
        let items = parse_checklist(
            "qa.signed | QA | QA signed the release off | manual approver | required\n\
             env.secrets | Config | Secrets | automatic | optional",
        )
        .unwrap();
        assert_eq!((items[0].automatic, items[0].required), (false, true));
        assert_eq!((items[1].automatic, items[1].required), (true, false));
        let bad = |text: &str| parse_checklist(text).err().unwrap();
        assert!(bad("x | A | B | automatic | required").contains("evaluates no item x"));
        assert!(bad("x | A | B | manual boss | required").contains("boss"));
        assert!(bad("x | A | B | manual operator | maybe").contains("required or optional"));
        assert!(bad(
            "x | A | B | manual operator | required\nx | C | D | manual operator | optional"
        )
        .contains("comes twice"));
        assert!(bad("just a line").contains("is not KEY"));
        let timeline = parse_timeline(
            "deploy | T-0 | Go | evidence | \nqa | T+2h | QA pass | operator | flows",
        )
        .unwrap();
        assert_eq!(timeline[1].offset_minutes, 120);
        let bad = |text: &str| parse_timeline(text).err().unwrap();
        assert!(bad("qa | T+2h | QA | evidence | ").contains("no evidence"));
        assert!(bad("deploy | T-0 | Go | operator | ").contains("ticks itself"));
        assert!(bad("qa | soon | QA | operator | ").contains("is not an offset"));
        for odd in ["Té5m", "T-5é", "T--99999999999d", "T+-5m", "T+99999999999m"] {
            assert!(parse_offset(odd).is_err(), "{odd}");
        }
        assert_eq!(
            parse_offset("T+31d").unwrap_err(),
            "T+31d is more than 30 days from T-0"
        );
        assert!(
            parse_checklist("migrations.backup | A | B | manual operator | required")
                .unwrap_err()
                .contains("the console's to evaluate")
        );
    }
}
