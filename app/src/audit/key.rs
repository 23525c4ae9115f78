//! The audit trail's key. Entries are chained with an HMAC under a key that lives outside
//! the store (a file, 0600), so someone who can write to the store but not read the key
//! cannot rebuild a consistent chain after an edit.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The file's first line, saying what it is to whoever finds it.
const HEADER: &str = "# Slipway audit key: keeps the audit trail tamper-evident. Keep it secret and back it up with the store.";

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error(
        "cannot read or create the audit key {} ({source}); make its folder writable or \
         choose another file with --audit-key-file or SLIPWAY_AUDIT_KEY_FILE",
        path.display()
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the audit key {} is not one Slipway wrote ({reason}); restore it from your backup — \
         without it the audit trail cannot be verified",
        path.display()
    )]
    Malformed { path: PathBuf, reason: &'static str },
    #[error(
        "the audit trail has {entries} entries but there is no audit key at {}: restore the \
         key from your backup (or point --audit-key-file at it); only when this store never \
         had a key (written by a version without one) run `slipway audit init-key` once",
        path.display()
    )]
    Missing { path: PathBuf, entries: i64 },
    #[error("there is an audit key at {} already; it is never replaced", path.display())]
    Exists { path: PathBuf },
    #[error("the audit trail could not be read: {0}")]
    Store(String),
}

/// The key, and the first entry it covers: entries written before the key existed keep
/// their plain SHA-256 links, anchored by the first keyed entry's link to them.
#[derive(Clone)]
pub struct AuditKey {
    key: [u8; 32],
    pub keyed_from: i64,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("keyed_from", &self.keyed_from)
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// The key at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Self>, AuditKeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text).map(Some),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(AuditKeyError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Creates a key at `path` (readable by its owner only) covering entries from
    /// `next_seq` on. Two processes creating it at once agree on one file.
    pub fn create(path: &Path, next_seq: i64) -> Result<Self, AuditKeyError> {
        let io = |source| AuditKeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(io)?;
        }
        let key = Self {
            key: random_key(),
            keyed_from: next_seq.max(1),
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => {
                let text = format!(
                    "{HEADER}\nkey={}\nkeyed_from={}\n",
                    hex::encode(key.key),
                    key.keyed_from
                );
                file.write_all(text.as_bytes()).map_err(io)?;
                file.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(io)?;
                Self::parse(path, &text)
            }
            Err(error) => Err(io(error)),
        }
    }

    fn parse(path: &Path, text: &str) -> Result<Self, AuditKeyError> {
        let malformed = |reason| AuditKeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.trim().strip_prefix(name)?.strip_prefix('='))
        };
        let key: [u8; 32] = hex::decode(field("key").ok_or_else(|| malformed("no key line"))?)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| malformed("the key is not 64 hex digits"))?;
        let keyed_from = field("keyed_from")
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| malformed("no keyed_from line"))?;
        Ok(Self { key, keyed_from })
    }

    /// HMAC-SHA256 of `message` under the key, hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.mac(message))
    }

    /// A key of its own for another `purpose` (sealing notification addresses), derived
    /// from this one: whoever lacks the audit key file cannot derive it from the store.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        self.mac(format!("slipway derived key: {purpose}").as_bytes())
    }

    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .expect("HMAC takes any key length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

fn random_key() -> [u8; 32] {
    let mut key = [0_u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("audit.key");
        assert!(AuditKey::load(&path).unwrap().is_none());
        let created = AuditKey::create(&path, 7).unwrap();
        let again = AuditKey::create(&path, 99).unwrap();
        assert_eq!(created.keyed_from, 7);
        assert_eq!(again.keyed_from, 7, "an existing key keeps its start");
        assert_eq!(created.sign(b"entry"), again.sign(b"entry"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = AuditKey::create(&dir.path().join("other.key"), 1).unwrap();
        assert_ne!(created.sign(b"entry"), other.sign(b"entry"));
    }

    #[test]
    fn a_damaged_key_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        std::fs::write(&path, "key=abc\nkeyed_from=1\n").unwrap();
        let message = AuditKey::load(&path).unwrap_err().to_string();
        assert!(
            message.contains("audit.key") && message.contains("64 hex"),
            "{message}"
        );
    }
}
