//! The flags of a stack read from its env file and compose file, and what may be set: a
//! flag's word, on a flag of the stack (the writing is `stacks::env_file`'s).

use std::path::Path;

use crate::stacks::compose::{self, StackDefinition};
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
    // What it was goes into the audit trail: only a flag's word, never a longer value.
    let entries =
        compose::env_file_entries(Path::new(stack.env_file.as_deref().unwrap_or_default()))
            .map_err(|error| error.to_string())?;
    if let Some((_, old)) = entries.iter().rev().find(|(entry, _)| entry == name) {
        check_value(old).map_err(|_| {
            format!("{name}'s value now is not a flag's word: edit the env file by hand")
        })?;
    }
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
