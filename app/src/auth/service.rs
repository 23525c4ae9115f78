//! Sign-in, sessions, throttling and user management: the server half of `auth`.
//! Server functions and the page guard call these; each state change is audited.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_sessions::Session;

use crate::audit::service::{append, Actor};
use crate::context::ConsoleContext;
use crate::store::{now_epoch, now_utc, Store};

use super::names::{check_new_password, UserName};
use super::{password, users, AuthError, CurrentUser, Role};

/// Session lifetimes; both are enforced on the server.
#[derive(Clone, Copy, Debug)]
pub struct AuthSettings {
    /// Without a request for this long, the session ends.
    pub idle_timeout: Duration,
    /// However active, a session ends this long after sign-in.
    pub absolute_timeout: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 60 * 60),
        }
    }
}

/// Failures that lock an account, and the window they are counted in.
pub const ACCOUNT_FAILURE_LIMIT: i64 = 5;
/// Failures from one client address (across accounts) that lock the address.
pub const ADDRESS_FAILURE_LIMIT: i64 = 20;
pub const FAILURE_WINDOW_SECS: i64 = 15 * 60;
/// The first lock lasts this long; each further lock within a day doubles it.
pub const FIRST_LOCK_SECS: i64 = 60;
const LONGEST_LOCK_SECS: i64 = 60 * 60;
const LOCK_LEVEL_MEMORY_SECS: i64 = 24 * 60 * 60;

const SESSION_KEY: &str = "signed_in";

/// What the session remembers about its user.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SignedIn {
    user_id: String,
    role: Role,
    generation: i64,
    signed_in_at: i64,
}

fn session_failure(error: tower_sessions::session::Error) -> AuthError {
    tracing::error!(error = %error, "session store failure");
    AuthError::Unavailable
}

/// The signed-in user behind `session`, re-checked against the store on every request:
/// a disabled account, a reset password or an expired sign-in ends the session here, and a
/// changed role gives it a new id.
pub async fn authenticate(
    session: &Session,
    console: &ConsoleContext,
) -> Result<CurrentUser, AuthError> {
    let Some(mut signed_in) = session
        .get::<SignedIn>(SESSION_KEY)
        .await
        .map_err(session_failure)?
    else {
        return Err(AuthError::NotSignedIn);
    };
    let age = now_epoch() - signed_in.signed_in_at;
    let user = users::find_by_id(&console.store, &signed_in.user_id).await?;
    let still_valid = |user: &users::StoredUser| {
        !user.disabled
            && user.session_generation == signed_in.generation
            && age < console.auth.absolute_timeout.as_secs() as i64
    };
    let Some(user) = user.filter(still_valid) else {
        session.flush().await.map_err(session_failure)?;
        return Err(AuthError::NotSignedIn);
    };
    if user.role != signed_in.role {
        session.cycle_id().await.map_err(session_failure)?;
        signed_in.role = user.role;
        session
            .insert(SESSION_KEY, &signed_in)
            .await
            .map_err(session_failure)?;
    }
    Ok(CurrentUser {
        id: user.id,
        name: user.name,
        role: user.role,
    })
}

/// Refuses a user whose role is below `needed`.
pub fn authorize(user: &CurrentUser, needed: Role) -> Result<(), AuthError> {
    if user.role.allows(needed) {
        Ok(())
    } else {
        Err(AuthError::Forbidden { needed })
    }
}

/// Checks a name and password, with throttling, and on success starts a fresh session.
/// Every way of failing returns the same error after the same password work.
#[tracing::instrument(skip_all, fields(client = client_addr))]
pub async fn sign_in(
    console: &ConsoleContext,
    session: &Session,
    raw_name: &str,
    password: String,
    client_addr: &str,
) -> Result<CurrentUser, AuthError> {
    let store = &console.store;
    let now = now_epoch();
    let name = UserName::parse(raw_name).ok();
    // What throttling and the audit trail call the account, even when it is not a valid name.
    let subject: String = match &name {
        Some(name) => name.as_str().to_owned(),
        None => raw_name.trim().to_lowercase().chars().take(64).collect(),
    };
    let locked = locked_until(store, Scope::Account, &subject, now)
        .await?
        .is_some()
        || locked_until(store, Scope::Address, client_addr, now)
            .await?
            .is_some();
    let user = match &name {
        Some(name) => users::find_by_name(store, name.as_str()).await?,
        None => None,
    };
    let stored_hash = user
        .as_ref()
        .filter(|_| !locked)
        .map(|user| user.password_hash.clone());
    let password_matches = password::verify(password, stored_hash).await;

    let outcome = match user {
        _ if locked => Err("locked"),
        None => Err("unknown user"),
        Some(_) if !password_matches => Err("wrong password"),
        Some(user) if user.disabled => Err("account disabled"),
        Some(user) => Ok(user),
    };
    let actor = Actor {
        name: subject.clone(),
        client_addr: client_addr.to_owned(),
    };
    let user = match outcome {
        Ok(user) => user,
        Err(reason) => {
            record_failure(store, &actor, reason, locked, now).await?;
            return Err(AuthError::SignInFailed);
        }
    };

    // A new id at sign-in: a session id planted before sign-in is worth nothing after it.
    session.cycle_id().await.map_err(session_failure)?;
    session
        .insert(
            SESSION_KEY,
            SignedIn {
                user_id: user.id.clone(),
                role: user.role,
                generation: user.session_generation,
                signed_in_at: now,
            },
        )
        .await
        .map_err(session_failure)?;
    sqlx::query("DELETE FROM sign_in_failures WHERE user_name = $1")
        .bind(&subject)
        .execute(store.pool())
        .await?;
    append(
        store,
        &actor,
        "auth.sign_in",
        &user.name,
        json!({ "role": user.role }),
    )
    .await?;
    Ok(CurrentUser {
        id: user.id,
        name: user.name,
        role: user.role,
    })
}

/// Ends the session on the server: its id is deleted, so a replayed cookie finds nothing.
pub async fn sign_out(
    console: &ConsoleContext,
    session: &Session,
    user: &CurrentUser,
    client_addr: &str,
) -> Result<(), AuthError> {
    session.flush().await.map_err(session_failure)?;
    let actor = Actor {
        name: user.name.clone(),
        client_addr: client_addr.to_owned(),
    };
    append(
        &console.store,
        &actor,
        "auth.sign_out",
        &user.name,
        json!({}),
    )
    .await?;
    Ok(())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Account,
    Address,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Address => "address",
        }
    }

    fn failure_column(self) -> &'static str {
        match self {
            Scope::Account => "user_name",
            Scope::Address => "client_addr",
        }
    }

    fn limit(self) -> i64 {
        match self {
            Scope::Account => ACCOUNT_FAILURE_LIMIT,
            Scope::Address => ADDRESS_FAILURE_LIMIT,
        }
    }
}

async fn locked_until(
    store: &Store,
    scope: Scope,
    subject: &str,
    now: i64,
) -> Result<Option<i64>, AuthError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT locked_until FROM lockouts WHERE scope = $1 AND subject = $2 AND locked_until > $3",
    )
    .bind(scope.as_str())
    .bind(subject)
    .bind(now)
    .fetch_optional(store.pool())
    .await?;
    Ok(row.map(|(until,)| until))
}

async fn record_failure(
    store: &Store,
    actor: &Actor,
    reason: &str,
    already_locked: bool,
    now: i64,
) -> Result<(), AuthError> {
    sqlx::query(
        "INSERT INTO sign_in_failures (id, user_name, client_addr, failed_at, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(&actor.name)
    .bind(&actor.client_addr)
    .bind(now)
    .bind(now_utc())
    .execute(store.pool())
    .await?;
    append(
        store,
        actor,
        "auth.sign_in_failed",
        &actor.name,
        json!({ "reason": reason }),
    )
    .await?;
    // Attempts during a lock are recorded but do not extend it.
    if already_locked {
        return Ok(());
    }
    for (scope, subject) in [
        (Scope::Account, &actor.name),
        (Scope::Address, &actor.client_addr),
    ] {
        if let Some((level, seconds)) = lock_if_over_limit(store, scope, subject, now).await? {
            append(
                store,
                &Actor::system(),
                "auth.lockout",
                &format!("{}:{subject}", scope.as_str()),
                json!({ "level": level, "seconds": seconds, "client_addr": actor.client_addr }),
            )
            .await?;
        }
    }
    Ok(())
}

/// Locks `subject` when it has reached its failure limit since the window opened or its
/// last lock ended; returns the lock level and length.
async fn lock_if_over_limit(
    store: &Store,
    scope: Scope,
    subject: &str,
    now: i64,
) -> Result<Option<(i64, i64)>, AuthError> {
    let previous: Option<(i64, i64)> = sqlx::query_as(
        "SELECT level, locked_until FROM lockouts WHERE scope = $1 AND subject = $2",
    )
    .bind(scope.as_str())
    .bind(subject)
    .fetch_optional(store.pool())
    .await?;
    let counted_since = previous
        .map(|(_, until)| until)
        .unwrap_or(0)
        .max(now - FAILURE_WINDOW_SECS);
    let (failures,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM sign_in_failures WHERE {} = $1 AND failed_at >= $2",
        scope.failure_column()
    ))
    .bind(subject)
    .bind(counted_since)
    .fetch_one(store.pool())
    .await?;
    if failures < scope.limit() {
        return Ok(None);
    }
    let level = match previous {
        Some((level, until)) if now - until < LOCK_LEVEL_MEMORY_SECS => level + 1,
        _ => 0,
    };
    let seconds = lock_seconds(level);
    let mut tx = store.pool().begin().await?;
    sqlx::query("DELETE FROM lockouts WHERE scope = $1 AND subject = $2")
        .bind(scope.as_str())
        .bind(subject)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO lockouts (scope, subject, level, locked_at, locked_until, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(scope.as_str())
    .bind(subject)
    .bind(level)
    .bind(now)
    .bind(now + seconds)
    .bind(now_utc())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some((level, seconds)))
}

/// 1 minute, then 2, 4, 8 … up to an hour.
pub fn lock_seconds(level: i64) -> i64 {
    let doubled = FIRST_LOCK_SECS.saturating_mul(1_i64 << level.clamp(0, 30));
    doubled.min(LONGEST_LOCK_SECS)
}

/// Adds a user; used by the Admin page and by `slipway user add`.
pub async fn add_user(
    store: &Store,
    actor: &Actor,
    raw_name: &str,
    role: Role,
    new_password: String,
) -> Result<super::UserSummary, AuthError> {
    let name = UserName::parse(raw_name).map_err(AuthError::Invalid)?;
    check_new_password(&new_password).map_err(AuthError::Invalid)?;
    let hash = password::hash(new_password).await?;
    let user = users::insert(store, &name, role, &hash).await?;
    append(
        store,
        actor,
        "user.added",
        &user.name,
        json!({ "role": role }),
    )
    .await?;
    Ok(super::UserSummary {
        id: user.id,
        name: user.name,
        role: user.role,
        disabled: user.disabled,
        created_at: now_utc(),
    })
}

async fn existing(store: &Store, user_id: &str) -> Result<users::StoredUser, AuthError> {
    users::find_by_id(store, user_id)
        .await?
        .ok_or(AuthError::UnknownUser)
}

/// The console must keep one active admin: refuses to demote or disable the last one.
async fn keep_an_admin(store: &Store, user: &users::StoredUser) -> Result<(), AuthError> {
    if user.role == Role::Admin
        && !user.disabled
        && users::other_active_admins(store, &user.id).await? == 0
    {
        return Err(AuthError::Invalid(format!(
            "{} is the last active admin; make someone else admin first.",
            user.name
        )));
    }
    Ok(())
}

pub async fn change_role(
    store: &Store,
    actor: &Actor,
    user_id: &str,
    role: Role,
) -> Result<(), AuthError> {
    let user = existing(store, user_id).await?;
    if user.role == role {
        return Ok(());
    }
    if role != Role::Admin {
        keep_an_admin(store, &user).await?;
    }
    users::set_role(store, &user.id, role).await?;
    append(
        store,
        actor,
        "user.role_changed",
        &user.name,
        json!({ "from": user.role, "to": role }),
    )
    .await?;
    Ok(())
}

pub async fn set_disabled(
    store: &Store,
    actor: &Actor,
    user_id: &str,
    disabled: bool,
) -> Result<(), AuthError> {
    let user = existing(store, user_id).await?;
    if user.disabled == disabled {
        return Ok(());
    }
    if disabled {
        keep_an_admin(store, &user).await?;
    }
    users::set_disabled(store, &user.id, disabled).await?;
    let action = if disabled {
        "user.disabled"
    } else {
        "user.enabled"
    };
    append(store, actor, action, &user.name, json!({})).await?;
    Ok(())
}

pub async fn reset_password(
    store: &Store,
    actor: &Actor,
    user_id: &str,
    new_password: String,
) -> Result<(), AuthError> {
    let user = existing(store, user_id).await?;
    check_new_password(&new_password).map_err(AuthError::Invalid)?;
    let hash = password::hash(new_password).await?;
    users::set_password_hash(store, &user.id, &hash).await?;
    append(store, actor, "user.password_reset", &user.name, json!({})).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_double_and_stop_at_an_hour() {
        assert_eq!(lock_seconds(0), 60);
        assert_eq!(lock_seconds(1), 120);
        assert_eq!(lock_seconds(3), 480);
        assert_eq!(lock_seconds(6), 3600);
        assert_eq!(lock_seconds(99), 3600);
    }
}
