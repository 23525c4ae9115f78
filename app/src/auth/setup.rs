//! The first admin, made in the browser. While no active admin exists, a starting console
//! makes a one-time setup link (a random token; only its SHA-256 is kept, in this process's
//! memory) and prints it; whoever opens it within the hour creates the admin on the sign-in
//! page. The link ends when used, after an hour, when the console stops, or as soon as an
//! admin exists by any path. `slipway user add` stays for scripts.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::audit::service::{Actor, Audited};
use crate::store::Store;

use super::names::{check_new_password, UserName};
use super::{password, users, AuthError, Role, UserSummary};

/// How long a setup link lasts.
pub const LINK_LASTS: Duration = Duration::from_secs(60 * 60);

/// The console's setup link, if it has one: the token's hash and when it ends.
#[derive(Clone, Debug, Default)]
pub struct SetupLink {
    offered: Arc<Mutex<Option<(String, Instant)>>>,
}

fn hashed(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl SetupLink {
    /// Makes a link when the store has no active admin; the token to print, once.
    pub async fn offer(&self, store: &Store) -> Result<Option<String>, AuthError> {
        let mut db = store
            .pool()
            .acquire()
            .await
            .map_err(crate::store::StoreError::from)?;
        if users::other_active_admins(&mut db, "").await? > 0 {
            return Ok(None);
        }
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        *self.offered.lock().expect("setup link") =
            Some((hashed(&token), Instant::now() + LINK_LASTS));
        Ok(Some(token))
    }

    /// Whether `token` is this console's link and the link still lasts.
    fn holds(&self, token: &str) -> bool {
        let offered = self.offered.lock().expect("setup link");
        match offered.as_ref() {
            // Compared as hashes: the time it takes says nothing about the token.
            Some((hash, ends)) => Instant::now() < *ends && *hash == hashed(token),
            None => false,
        }
    }

    fn end(&self) {
        *self.offered.lock().expect("setup link") = None;
    }

    /// Creates the first admin with the link's `token`; audited. Refused, and the link
    /// ended, when an admin exists already.
    pub async fn create_admin(
        &self,
        store: &Store,
        token: &str,
        raw_name: &str,
        new_password: String,
        client_addr: &str,
    ) -> Result<UserSummary, AuthError> {
        // The token before any password work: a guess costs the console nothing.
        if !self.holds(token) {
            return Err(AuthError::SetupLinkInvalid);
        }
        let name = UserName::parse(raw_name).map_err(AuthError::Invalid)?;
        check_new_password(&new_password).map_err(AuthError::Invalid)?;
        let hash = password::hash(new_password).await?;
        let mut audited = Audited::begin(store).await?;
        // Inside the audited change, which queues behind any other: two uses of one link,
        // or a link and `slipway user add`, make one admin.
        if users::other_active_admins(audited.db(), "").await? > 0 {
            audited.rollback().await?;
            self.end();
            return Err(AuthError::Conflict(
                "An admin exists already: sign in, or ask an admin for an account.".into(),
            ));
        }
        let user = users::insert(audited.db(), &name, Role::Admin, &hash).await?;
        let actor = Actor {
            name: "setup-link".into(),
            client_addr: client_addr.to_owned(),
        };
        audited
            .append(
                &actor,
                "user.added",
                &user.name,
                json!({ "role": Role::Admin, "by": "setup link" }),
            )
            .await?;
        audited.commit().await?;
        self.end();
        Ok(UserSummary {
            id: user.id,
            name: user.name,
            role: user.role,
            disabled: user.disabled,
            created_at: crate::store::now_utc(),
        })
    }
}
