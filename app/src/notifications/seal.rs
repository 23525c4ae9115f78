//! A channel's address and signing secret, sealed in the store (XChaCha20-Poly1305) under a
//! key derived from the audit key: a copy of the store alone does not give them away, and a
//! sealed value moved to another row or changed does not open.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::XChaCha20Poly1305;

use crate::store::{Store, StoreError};

const PURPOSE: &str = "notification channel secrets";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the channel's address does not open with this console's audit key (made under another key, or changed)")]
    Broken,
}

fn cipher(store: &Store) -> Result<XChaCha20Poly1305, StoreError> {
    let key = store.audit_key().ok_or(StoreError::NoAuditKey)?;
    Ok(XChaCha20Poly1305::new(&key.derive(PURPOSE).into()))
}

/// A new random secret (256 bits, hex): a signed webhook's signing secret.
pub fn random_secret() -> String {
    hex::encode(XChaCha20Poly1305::generate_key(&mut OsRng))
}

/// `plain` sealed for the row `bound_to` (a channel's id): base64 of nonce and ciphertext.
pub fn seal(store: &Store, bound_to: &str, plain: &str) -> Result<String, SealError> {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher(store)?
        .encrypt(
            &nonce,
            Payload {
                msg: plain.as_bytes(),
                aad: bound_to.as_bytes(),
            },
        )
        .map_err(|_| SealError::Broken)?;
    let mut bytes = nonce.to_vec();
    bytes.extend(sealed);
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The value [`seal`] sealed for `bound_to`; an error when the key differs or it was changed.
pub fn open(store: &Store, bound_to: &str, sealed: &str) -> Result<String, SealError> {
    let broken = || SealError::Broken;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .map_err(|_| broken())?;
    if bytes.len() < 24 {
        return Err(broken());
    }
    let (nonce, sealed) = bytes.split_at(24);
    let plain = cipher(store)?
        .decrypt(
            nonce.into(),
            Payload {
                msg: sealed,
                aad: bound_to.as_bytes(),
            },
        )
        .map_err(|_| broken())?;
    String::from_utf8(plain).map_err(|_| broken())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store_with_key(dir: &std::path::Path) -> Store {
        let location = crate::store::StoreLocation::DataDir(dir.to_path_buf());
        let store = Store::open(&location).await.unwrap();
        crate::audit::service::with_key(store, &dir.join("audit.key"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_sealed_value_opens_only_for_its_row_and_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_key(dir.path()).await;
        let address = "https://hooks.slack.com/services/T0/B0/secret-part";
        let sealed = seal(&store, "channel-1", address).unwrap();
        assert!(!sealed.contains("secret-part"));
        assert_ne!(
            sealed,
            seal(&store, "channel-1", address).unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(open(&store, "channel-1", &sealed).unwrap(), address);
        assert!(
            open(&store, "channel-2", &sealed).is_err(),
            "moved to another row"
        );
        let mut changed = sealed.clone().into_bytes();
        changed[40] = if changed[40] == b'A' { b'B' } else { b'A' };
        assert!(open(&store, "channel-1", &String::from_utf8(changed).unwrap()).is_err());
        assert!(open(&store, "channel-1", "not base64!").is_err());

        let other = tempfile::tempdir().unwrap();
        let other_store = store_with_key(other.path()).await;
        assert!(
            open(&other_store, "channel-1", &sealed).is_err(),
            "another key"
        );
    }
}
