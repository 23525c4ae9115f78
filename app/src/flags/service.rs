//! The flags of a stack read from its env file and compose file, and a flag written back:
//! one line changed (comments, order and every other value kept), the file replaced
//! atomically with its mode and owner, the previous version kept beside it.

use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use crate::stacks::compose::{self, is_variable_name, StackDefinition};
use crate::stacks::{secrets, ServiceRole, StackSummary};

use super::{Flag, FlagError};

/// A flag's values are short words (`true`, `off`, `v2`): shorter than a value that could be
/// a credential, and nothing an env file would need to quote.
const LONGEST_VALUE: usize = secrets::CREDENTIAL_LIKE - 1;

/// Whether a variable is a feature flag: `FEATURE_*` (also with a prefix such as
/// `NEXT_PUBLIC_FEATURE_*`) or one the compose file names in `x-slipway.flags`; never one
/// whose name says it holds a secret.
pub fn is_flag(name: &str, declared: &[String]) -> bool {
    let named = name.starts_with("FEATURE_") || name.contains("_FEATURE_");
    (named || declared.iter().any(|flag| flag == name)) && !secrets::is_secret_name(name)
}

/// The value a switch offers: the other word of a known pair, in the same case.
fn opposite(value: &str) -> String {
    const PAIRS: [(&str, &str); 5] = [
        ("true", "false"),
        ("on", "off"),
        ("1", "0"),
        ("yes", "no"),
        ("enabled", "disabled"),
    ];
    let lower = value.to_ascii_lowercase();
    let Some(other) = PAIRS.iter().find_map(|(a, b)| {
        if lower == *a {
            Some(*b)
        } else if lower == *b {
            Some(*a)
        } else {
            None
        }
    }) else {
        return String::new();
    };
    if !value.is_empty() && value == value.to_ascii_uppercase() && value != lower {
        other.to_ascii_uppercase()
    } else {
        other.to_owned()
    }
}

/// A value a flag may take: a short word of letters, digits, `.`, `_` and `-`.
fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() || value.chars().count() > LONGEST_VALUE {
        return Err(format!(
            "a flag's value is 1 to {LONGEST_VALUE} characters long"
        ));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err("a flag's value is letters, digits, '.', '_' and '-' only".into());
    }
    Ok(())
}

/// The stack's flags with their values and the services that read them.
pub fn list(stack: &StackSummary) -> Result<Vec<Flag>, FlagError> {
    let definition = crate::stacks::service::definition(stack)?;
    let entries = match stack.env_file.as_deref() {
        Some(path) => compose::env_file_entries(Path::new(path))
            .map_err(|error| FlagError::Refused(error.to_string()))?,
        None => Vec::new(),
    };
    Ok(flags_of(&definition, &entries))
}

/// Flags in env-file order, then those only the compose file declares.
fn flags_of(definition: &StackDefinition, entries: &[(String, String)]) -> Vec<Flag> {
    let mut names: Vec<&str> = Vec::new();
    let declared = entries
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(definition.flags.iter().map(String::as_str));
    for name in declared {
        if is_flag(name, &definition.flags) && !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            // The env file's last line for a name is the one that counts.
            let value = entries
                .iter()
                .rev()
                .find(|(entry, _)| entry == name)
                .map(|(_, value)| value.clone());
            let readers = definition
                .services
                .iter()
                .filter(|service| service.variables.contains(name));
            let shown = value
                .as_deref()
                .filter(|value| value.chars().count() <= LONGEST_VALUE);
            Flag {
                name: name.to_owned(),
                value: shown.map_or_else(|| "••••".to_owned(), str::to_owned),
                in_env_file: value.is_some(),
                switch_to: shown.map(opposite).unwrap_or_default(),
                readers: readers.clone().map(|s| s.name.clone()).collect(),
                replaced: readers
                    .filter(|service| service.role == ServiceRole::App)
                    .map(|s| s.name.clone())
                    .collect(),
            }
        })
        .collect()
}

/// Whether `name` may be set to `value` on the stack now: a flag of the stack, an env file
/// to write it to, a value it may take, and not the value it has.
pub fn check(stack: &StackSummary, name: &str, value: &str) -> Result<Flag, String> {
    if stack.env_file.is_none() {
        return Err(format!(
            "stack {} has no env file to write a flag to",
            stack.name
        ));
    }
    let flags = list(stack).map_err(|error| error.to_string())?;
    let flag = flags
        .into_iter()
        .find(|flag| flag.name == name)
        .ok_or_else(|| {
            format!(
                "{name:?} is not a flag of stack {}: flags are the env file's FEATURE_* variables and those x-slipway.flags names",
                stack.name
            )
        })?;
    check_value(value)?;
    if secrets::process_variables()
        .iter()
        .any(|(variable, _)| variable == name)
    {
        return Err(format!(
            "{name} is set in this process's environment, which wins over the env file: unset it there"
        ));
    }
    if flag.in_env_file && flag.value == value {
        return Err(format!("{name} is {value} already"));
    }
    Ok(flag)
}

/// What a flag run wrote, so that a failure can put the file back.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub previous: String,
    pub written: String,
    /// The flag's value before, as the file had it (`None`: it was not in the file).
    pub old_value: Option<String>,
}

impl Written {
    /// Where the previous version is kept.
    pub fn previous_path(&self) -> PathBuf {
        beside(&self.path, ".previous")
    }
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Sets `name` to `value` in the env file at `path` (a symbolic link is followed to the file
/// it names); the previous version is kept as `FILE.previous`.
pub fn write(path: &Path, name: &str, value: &str) -> Result<Written, String> {
    if !is_variable_name(name) {
        return Err(format!("{name:?} is not a variable name"));
    }
    check_value(value)?;
    let cannot = |error: std::io::Error| format!("cannot write {}: {error}", path.display());
    let path = std::fs::canonicalize(path).map_err(cannot)?;
    let metadata = std::fs::metadata(&path).map_err(cannot)?;
    let previous = std::fs::read_to_string(&path).map_err(cannot)?;
    let (written, _) = set_variable(&previous, name, value);
    let old_value = only_the_flag_changed(&previous, &written, name, value)?;
    // What it was goes into the audit trail: only a flag's word, never a longer value.
    if let Some(old) = &old_value {
        check_value(old).map_err(|_| {
            format!("{name}'s value now is not a flag's word: edit the env file by hand")
        })?;
    }
    replace_file(&beside(&path, ".previous"), &previous, &metadata).map_err(cannot)?;
    replace_file(&path, &written, &metadata).map_err(cannot)?;
    Ok(Written {
        path,
        previous,
        written,
        old_value,
    })
}

/// Puts the previous version back, unless the file changed since it was written.
pub fn put_back(written: &Written) -> Result<(), String> {
    let cannot =
        |error: std::io::Error| format!("cannot put back {}: {error}", written.path.display());
    let now = std::fs::read_to_string(&written.path).map_err(cannot)?;
    if now != written.written {
        return Err(format!(
            "{} changed since the flag was written; it is left as it is (the version before is {})",
            written.path.display(),
            written.previous_path().display()
        ));
    }
    let metadata = std::fs::metadata(&written.path).map_err(cannot)?;
    replace_file(&written.path, &written.previous, &metadata).map_err(cannot)
}

/// The env file's text with `name`'s value set: its last assignment rewritten in place
/// (`export` and a trailing comment kept), or a line added at the end. Returns the text and
/// the value the line had.
pub fn set_variable(text: &str, name: &str, value: &str) -> (String, Option<String>) {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let assignment = lines
        .iter()
        .rposition(|line| assigned_value(line, name).is_some());
    let Some(index) = assignment else {
        let mut text = text.to_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{name}={value}\n"));
        return (text, None);
    };
    let line = lines[index];
    let (body, ending) = match line.strip_suffix("\r\n") {
        Some(body) => (body, "\r\n"),
        None => line
            .strip_suffix('\n')
            .map_or((line, ""), |body| (body, "\n")),
    };
    let old = assigned_value(body, name).unwrap_or_default();
    let head = &body[..body.len() - old.len()];
    // An unquoted value ends where ` #` begins a comment; the comment stays.
    let (old_value, comment) = match old.find(" #") {
        Some(at) if !old.starts_with(['"', '\'']) => (&old[..at], &old[at..]),
        _ => (old, ""),
    };
    let replaced = format!("{head}{value}{comment}{ending}");
    lines[index] = &replaced;
    (lines.concat(), Some(old_value.trim().to_owned()))
}

/// The text after `NAME=` when the line assigns `name` (`export NAME = value` too).
fn assigned_value<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let rest = line.trim_start();
    let rest = rest
        .strip_prefix("export")
        .filter(|after| after.starts_with([' ', '\t']))
        .map_or(rest, str::trim_start);
    let rest = rest.strip_prefix(name)?.trim_start();
    let rest = rest.strip_prefix('=')?;
    Some(rest.trim_start().trim_end_matches(['\r', '\n']))
}

/// The file read back must differ from before in this flag's value alone: a rewrite that
/// would change anything else (a multi-line value that looked like an assignment) is refused.
/// Returns the flag's value before, as the file gave it.
fn only_the_flag_changed(
    before: &str,
    after: &str,
    name: &str,
    value: &str,
) -> Result<Option<String>, String> {
    let read = |text: &str| -> Option<Vec<(String, String)>> {
        dotenvy::from_read_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .ok()
    };
    let refused = || {
        Err(format!(
            "the env file cannot be changed safely for {name}; edit it by hand"
        ))
    };
    let (Some(before), Some(after)) = (read(before), read(after)) else {
        return refused();
    };
    let without = |entries: &[(String, String)]| -> Vec<(String, String)> {
        entries
            .iter()
            .filter(|(entry, _)| entry != name)
            .cloned()
            .collect()
    };
    let set_now = after
        .iter()
        .rev()
        .find(|(entry, _)| entry == name)
        .is_some_and(|(_, now)| now == value);
    if without(&before) != without(&after) || !set_now {
        return refused();
    }
    Ok(before
        .into_iter()
        .rev()
        .find(|(entry, _)| entry == name)
        .map(|(_, old)| old))
}

/// Replaces `path` with `text` atomically: a temporary file beside it with the mode and
/// owner of `like`, synced, then renamed over it.
fn replace_file(path: &Path, text: &str, like: &std::fs::Metadata) -> std::io::Result<()> {
    let temporary = beside(path, &format!(".slipway-{}", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(like.mode() & 0o7777)
        .open(&temporary)?;
    // Kept as the original's owner where this process may (as root); otherwise its own.
    let _ = std::os::unix::fs::fchown(&file, Some(like.uid()), Some(like.gid()));
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_is_set_in_place_keeping_comments_order_and_export() {
        let text = "# settings\nPASSWORD=secret-0123456789\nexport FEATURE_A=true # new checkout\nFEATURE_B = off\r\nPORT=1\n";
        let (after, old) = set_variable(text, "FEATURE_A", "false");
        assert_eq!(old.as_deref(), Some("true"));
        assert_eq!(
            after,
            "# settings\nPASSWORD=secret-0123456789\nexport FEATURE_A=false # new checkout\nFEATURE_B = off\r\nPORT=1\n"
        );
        let (after, old) = set_variable(text, "FEATURE_B", "on");
        assert_eq!(old.as_deref(), Some("off"));
        assert!(after.contains("FEATURE_B = on\r\nPORT=1\n"), "{after}");
        only_the_flag_changed(text, &after, "FEATURE_B", "on").unwrap();
    }

    #[test]
    fn a_flag_not_in_the_file_is_added_at_its_end_and_the_last_assignment_counts() {
        let (after, old) = set_variable("PORT=1", "FEATURE_NEW", "true");
        assert_eq!((after.as_str(), old), ("PORT=1\nFEATURE_NEW=true\n", None));
        let (after, _) = set_variable("FEATURE_X=1\nFEATURE_X=0\n", "FEATURE_X", "1");
        assert_eq!(after, "FEATURE_X=1\nFEATURE_X=1\n");
        // A name that only begins like the flag's is another variable.
        let (after, old) = set_variable("FEATURE_XY=1\n", "FEATURE_X", "0");
        assert_eq!((after.as_str(), old), ("FEATURE_XY=1\nFEATURE_X=0\n", None));
    }

    #[test]
    fn a_rewrite_that_would_change_another_value_is_refused() {
        // The "assignment" is a line inside another variable's quoted value.
        let text = "NOTE=\"first\nFEATURE_X=1\nlast\"\n";
        let (after, _) = set_variable(text, "FEATURE_X", "0");
        assert!(only_the_flag_changed(text, &after, "FEATURE_X", "0").is_err());
    }

    #[test]
    fn flags_are_named_so_never_secrets_and_take_short_plain_values() {
        let declared = vec!["MAINTENANCE".to_owned()];
        assert!(is_flag("FEATURE_NEW_CHECKOUT", &declared));
        assert!(is_flag("NEXT_PUBLIC_FEATURE_NEW_CHECKOUT", &declared));
        assert!(is_flag("MAINTENANCE", &declared));
        assert!(!is_flag("PORTAL_VERSION", &declared));
        assert!(!is_flag("FEATURE_API_TOKEN", &declared));
        assert!(check_value("false").is_ok());
        assert!(check_value("v2.1-beta").is_ok());
        for bad in [
            "",
            "two words",
            "x\nPASSWORD=y",
            "$HOME",
            "a\"b",
            "much-too-long-value",
        ] {
            assert!(check_value(bad).is_err(), "{bad:?}");
        }
        assert_eq!(opposite("true"), "false");
        assert_eq!(opposite("OFF"), "ON");
        assert_eq!(opposite("0"), "1");
        assert_eq!(opposite("v2"), "");
    }

    #[test]
    fn writing_keeps_the_mode_and_the_previous_version_and_puts_it_back() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join(".env");
        std::fs::write(&env, "SECRET_KEY=0123456789abcdef\nFEATURE_A=true\n").unwrap();
        std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.path().join("link.env");
        std::os::unix::fs::symlink(&env, &link).unwrap();
        let written = write(&link, "FEATURE_A", "false").unwrap();
        assert_eq!(written.old_value.as_deref(), Some("true"));
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(&env).unwrap(),
            "SECRET_KEY=0123456789abcdef\nFEATURE_A=false\n"
        );
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&env), 0o600);
        let previous = written.previous_path();
        assert_eq!(mode(&previous), 0o600);
        assert!(std::fs::read_to_string(&previous)
            .unwrap()
            .contains("FEATURE_A=true"));
        put_back(&written).unwrap();
        assert!(std::fs::read_to_string(&env)
            .unwrap()
            .contains("FEATURE_A=true"));
        // Changed by someone else since: left alone.
        let written = write(&env, "FEATURE_A", "false").unwrap();
        std::fs::write(&env, "FEATURE_A=maybe\n").unwrap();
        assert!(put_back(&written).is_err());
        assert_eq!(std::fs::read_to_string(&env).unwrap(), "FEATURE_A=maybe\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names.iter().all(|name| !name.contains(".slipway-")),
            "{names:?}"
        );
    }
}
