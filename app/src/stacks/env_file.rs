//! A stack's env file written back: each variable's line changed in place (comments, order
//! and every other value kept), the file replaced atomically with its mode and owner, the
//! previous version kept beside it, and put back when the run that wrote it fails.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::compose::is_variable_name;

/// What a run wrote, so that a failure can put the file back.
#[derive(Debug)]
pub struct Written {
    pub path: PathBuf,
    pub previous: String,
    pub written: String,
    /// Each variable's value before, as the file had it (`None`: it was not in the file).
    pub old_values: BTreeMap<String, Option<String>>,
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

/// Sets each variable to its value in the env file at `path` (a symbolic link is followed to
/// the file it names); the previous version is kept as `FILE.previous`. Values are plain
/// (see [`check_plain`]): nothing an env file would need to quote.
pub fn write(path: &Path, values: &[(String, String)]) -> Result<Written, String> {
    for (name, value) in values {
        if !is_variable_name(name) {
            return Err(format!("{name:?} is not a variable name"));
        }
        check_plain(name, value)?;
    }
    let cannot = |error: std::io::Error| format!("cannot write {}: {error}", path.display());
    let path = std::fs::canonicalize(path).map_err(cannot)?;
    let metadata = std::fs::metadata(&path).map_err(cannot)?;
    let previous = std::fs::read_to_string(&path).map_err(cannot)?;
    let mut written = previous.clone();
    for (name, value) in values {
        written = set_variable(&written, name, value).0;
    }
    let old_values = only_these_changed(&previous, &written, values)?;
    replace_file(&beside(&path, ".previous"), &previous, &metadata).map_err(cannot)?;
    replace_file(&path, &written, &metadata).map_err(cannot)?;
    Ok(Written {
        path,
        previous,
        written,
        old_values,
    })
}

/// A value written without quotes: letters, digits and `. _ - : / @ +`, at most 200.
pub fn check_plain(name: &str, value: &str) -> Result<(), String> {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-_:/@+".contains(c));
    if value.is_empty() || value.len() > 200 || !plain {
        return Err(format!(
            "{name}: a value is 1 to 200 letters, digits and . _ - : / @ +"
        ));
    }
    Ok(())
}

/// Puts the previous version back, unless the file changed since it was written.
pub fn put_back(written: &Written) -> Result<(), String> {
    let cannot =
        |error: std::io::Error| format!("cannot put back {}: {error}", written.path.display());
    let now = std::fs::read_to_string(&written.path).map_err(cannot)?;
    if now != written.written {
        return Err(format!(
            "{} changed since it was written; it is left as it is (the version before is {})",
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

/// The file read back must differ from before in these variables' values alone: a rewrite
/// that would change anything else (a multi-line value that looked like an assignment) is
/// refused. Returns each variable's value before, as the file gave it.
fn only_these_changed(
    before: &str,
    after: &str,
    values: &[(String, String)],
) -> Result<BTreeMap<String, Option<String>>, String> {
    let read = |text: &str| -> Option<Vec<(String, String)>> {
        dotenvy::from_read_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .ok()
    };
    let refused = || Err("the env file cannot be changed safely; edit it by hand".to_owned());
    let (Some(before), Some(after)) = (read(before), read(after)) else {
        return refused();
    };
    let others = |entries: &[(String, String)]| -> Vec<(String, String)> {
        entries
            .iter()
            .filter(|(entry, _)| !values.iter().any(|(name, _)| name == entry))
            .cloned()
            .collect()
    };
    let last = |entries: &[(String, String)], name: &str| {
        entries
            .iter()
            .rev()
            .find(|(entry, _)| entry == name)
            .map(|(_, value)| value.clone())
    };
    let all_set = values
        .iter()
        .all(|(name, value)| last(&after, name).as_ref() == Some(value));
    if others(&before) != others(&after) || !all_set {
        return refused();
    }
    Ok(values
        .iter()
        .map(|(name, _)| (name.clone(), last(&before, name)))
        .collect())
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

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

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
        only_these_changed(text, &after, &pairs(&[("FEATURE_B", "on")])).unwrap();
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
        assert!(only_these_changed(text, &after, &pairs(&[("FEATURE_X", "0")])).is_err());
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
        let written = write(&link, &pairs(&[("FEATURE_A", "false")])).unwrap();
        assert_eq!(written.old_values["FEATURE_A"].as_deref(), Some("true"));
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
        let written = write(&env, &pairs(&[("FEATURE_A", "false")])).unwrap();
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
