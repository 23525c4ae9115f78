//! Validated user names and passwords, checked once at the edge.

use serde::{Deserialize, Serialize};

pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_CHARS: usize = 1024;
const MAX_NAME_CHARS: usize = 64;

/// A user name: 1–64 of `a-z 0-9 . _ -`, stored lower-case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err("A user name is required.".into());
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(format!(
                "User names have at most {MAX_NAME_CHARS} characters."
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        {
            return Err(
                "User names use only letters, digits, dots, dashes and underscores.".into(),
            );
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a new password against the policy.
pub fn check_new_password(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        return Err(format!(
            "Passwords need at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    if length > MAX_PASSWORD_CHARS {
        return Err(format!(
            "Passwords have at most {MAX_PASSWORD_CHARS} characters."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_lower_cased() {
        assert_eq!(
            UserName::parse(" Ada.Lovelace ").unwrap().as_str(),
            "ada.lovelace"
        );
    }

    #[test]
    fn empty_long_and_odd_names_are_refused() {
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"a".repeat(65)).is_err());
        assert!(UserName::parse("robert'); drop table").is_err());
    }

    #[test]
    fn passwords_need_twelve_characters() {
        assert!(check_new_password("eleven-char").is_err());
        assert!(check_new_password("twelve-chars").is_ok());
        assert!(check_new_password("ünïcödé-pässwörd").is_ok());
    }
}
