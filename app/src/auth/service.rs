//! Sign-in, sessions, throttling and user management: the server half of `auth`.
//! Server functions and the page guard call these; each state change is audited.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tower_sessions::{Expiry, Session};

use crate::audit::service::{append, Actor, Audited};
use crate::context::ConsoleContext;
use crate::store::{now_epoch, now_utc, Store};

use super::names::{check_new_password, UserName};
use super::{password, users, AuthError, CurrentUser, Role};

/// Session lifetimes, both enforced on the server, and whom to believe about a client's
/// address.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Without a request for this long, the session ends.
    pub idle_timeout: Duration,
    /// However active, a session ends this long after sign-in.
    pub absolute_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 60 * 60),
            trusted_proxies: Vec::new(),
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
    /// When a person's request last moved the idle deadline (epoch seconds).
    #[serde(default)]
    deadline_moved_at: i64,
}

fn session_failure(error: tower_sessions::session::Error) -> AuthError {
    tracing::error!(error = %error, "session store failure");
    AuthError::Unavailable
}

/// Whether a request is someone using the console, which keeps their session from going
/// idle, or something a page does on its own (a timer's refresh, a live stream), which
/// must not keep an unattended tab signed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    Person,
    Background,
}

/// The signed-in user behind `session`, re-checked against the store on every request:
/// a disabled account, a reset password or an expired sign-in ends the session here, and a
/// changed role gives it a new id. Only a person's request moves the idle deadline on.
pub async fn authenticate(
    session: &Session,
    console: &ConsoleContext,
    activity: Activity,
) -> Result<CurrentUser, AuthError> {
    authenticate_remembering(session, console, activity, RequestUser::of_request()).await
}

/// [`authenticate`], keeping the user row read in `request` for the rest of the request.
pub async fn authenticate_remembering(
    session: &Session,
    console: &ConsoleContext,
    activity: Activity,
    request: Option<RequestUser>,
) -> Result<CurrentUser, AuthError> {
    let Some(mut signed_in) = session
        .get::<SignedIn>(SESSION_KEY)
        .await
        .map_err(session_failure)?
    else {
        return Err(AuthError::NotSignedIn);
    };
    let Some(user) = still_valid(console, &signed_in, request).await? else {
        session.flush().await.map_err(session_failure)?;
        return Err(AuthError::NotSignedIn);
    };
    if user.role != signed_in.role {
        // A new id is a new row: only for a session that is still stored (not one signed out
        // while this request was under way).
        let stored = match session.id() {
            Some(id) => still_signed_in(console, id).await?,
            None => false,
        };
        if !stored {
            session.flush().await.map_err(session_failure)?;
            return Err(AuthError::NotSignedIn);
        }
        session.cycle_id().await.map_err(session_failure)?;
        signed_in.role = user.role;
        session
            .insert(SESSION_KEY, &signed_in)
            .await
            .map_err(session_failure)?;
    }
    let idle = idle_expiry(console);
    let now = now_epoch();
    // Due after a step, or at once when the clock went back (or another console's runs behind).
    let moved = signed_in.deadline_moved_at;
    if activity == Activity::Person && (now - moved >= idle_step(idle) || now < moved) {
        // Saving the session (marked by the insert) moves its expiry `idle_timeout` ahead.
        signed_in.deadline_moved_at = now;
        session
            .insert(SESSION_KEY, &signed_in)
            .await
            .map_err(session_failure)?;
        session.set_expiry(Some(Expiry::OnInactivity(idle)));
    }
    Ok(CurrentUser {
        id: user.id,
        name: user.name,
        role: user.role,
    })
}

/// How far a person's request moves the idle deadline on at least: a thirtieth of the idle
/// timeout, a minute at most. Moving it on every click would write the session on every
/// request, and a page's requests would queue behind those writes; the deadline falls at
/// most one step early, never late.
fn idle_step(idle: time::Duration) -> i64 {
    (idle / 30_i32).whole_seconds().min(60)
}

/// The session layer's idle expiry, from the console's setting.
pub fn idle_expiry(console: &ConsoleContext) -> time::Duration {
    time::Duration::try_from(console.auth.idle_timeout).unwrap_or(time::Duration::minutes(30))
}

/// The user row a request's session stands for, read once per request: a page's server
/// functions each authenticate, and would each read it again. The page guard keeps one in
/// the request's extensions and the server provides a fresh one to every request it renders
/// or answers; without one, every call reads the store.
#[derive(Clone, Default)]
pub struct RequestUser(std::sync::Arc<std::sync::Mutex<Option<RememberedUser>>>);

/// A user row as read for one user id and password generation.
type RememberedUser = ((String, i64), Option<users::StoredUser>);

impl RequestUser {
    /// The request's: the one the page guard put in its extensions, else the one provided
    /// to its rendering or server function.
    fn of_request() -> Option<Self> {
        use leptos::prelude::use_context;
        use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Self>().cloned())
            .or_else(use_context::<Self>)
    }

    fn recall(&self, key: &(String, i64)) -> Option<Option<users::StoredUser>> {
        let remembered = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        remembered
            .as_ref()
            .filter(|(of, _)| of == key)
            .map(|(_, user)| user.clone())
    }

    fn keep(&self, key: (String, i64), user: Option<users::StoredUser>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((key, user));
    }
}

/// The user a session's sign-in still stands for: enabled, same password generation, and
/// within the absolute timeout.
async fn still_valid(
    console: &ConsoleContext,
    signed_in: &SignedIn,
    request: Option<RequestUser>,
) -> Result<Option<users::StoredUser>, AuthError> {
    let age = now_epoch() - signed_in.signed_in_at;
    let key = (signed_in.user_id.clone(), signed_in.generation);
    let user = match request.as_ref().and_then(|request| request.recall(&key)) {
        Some(user) => user,
        None => {
            let user = users::find_by_id(console.store.pool(), &signed_in.user_id).await?;
            if let Some(request) = &request {
                request.keep(key, user.clone());
            }
            user
        }
    };
    Ok(user.filter(|user| {
        !user.disabled
            && user.session_generation == signed_in.generation
            && age < console.auth.absolute_timeout.as_secs() as i64
    }))
}

/// Whether the session `id` is still signed in, read afresh from the store (a `Session`
/// keeps what it loaded for the whole request). Long-lived streams ask this from time to
/// time, so a sign-out, an idle timeout or a disabled account ends them.
pub async fn still_signed_in(
    console: &ConsoleContext,
    id: tower_sessions::session::Id,
) -> Result<bool, AuthError> {
    use tower_sessions::SessionStore;
    let record = super::session_store::SqlSessionStore::new(console.store.clone())
        .load(&id)
        .await
        .map_err(|error| {
            tracing::error!(error = %error, "session store failure");
            AuthError::Unavailable
        })?;
    let Some(signed_in) = record
        .and_then(|record| record.data.get(SESSION_KEY).cloned())
        .and_then(|value| serde_json::from_value::<SignedIn>(value).ok())
    else {
        return Ok(false);
    };
    // Afresh, never a request's memo: streams ask this to learn of a change.
    Ok(still_valid(console, &signed_in, None).await?.is_some())
}

/// Refuses a user whose role is below `needed`.
pub fn authorize(user: &CurrentUser, needed: Role) -> Result<(), AuthError> {
    if user.role.allows(needed) {
        Ok(())
    } else {
        Err(AuthError::Forbidden { needed })
    }
}

/// What throttling and the audit trail call an attempt at a name no account has: never
/// the typed text, which may be a password typed into the wrong field.
pub const UNKNOWN_ACCOUNT: &str = "(unknown name)";

/// Checks a name and password with sign-in's throttling: the attempt is recorded and
/// counted before the password work, and a failure is audited as `failure_action` (and may
/// lock the account or address). Every way of failing is the same `SignInFailed` after the
/// same password work. Sign-in uses it, and so does a decision that re-enters a password.
pub async fn check_password(
    store: &Store,
    raw_name: &str,
    password: String,
    client_addr: &str,
    failure_action: &str,
) -> Result<users::StoredUser, AuthError> {
    // A place in the password line first: past its limit nothing is checked or counted.
    let ticket = password::admit()?;
    let now = now_epoch();
    let user = match UserName::parse(raw_name) {
        Ok(name) => users::find_by_name(store, name.as_str()).await?,
        Err(_) => None,
    };
    let actor = Actor {
        name: user
            .as_ref()
            .map_or(UNKNOWN_ACCOUNT, |user| user.name.as_str())
            .to_owned(),
        client_addr: client_addr.to_owned(),
    };
    // The attempt counts as a failure from now until the password proves it right, so
    // parallel guesses see each other before any of them is checked.
    record_attempt(store, &actor, now).await?;
    let mut locked = false;
    for (scope, subject) in throttled(&actor) {
        locked = locked || is_locked(store, scope, subject, now).await?;
    }
    let stored_hash = user
        .as_ref()
        .filter(|_| !locked)
        .map(|user| user.password_hash.clone());
    let password_matches = password::verify(ticket, password, stored_hash).await;

    let outcome = match user {
        _ if locked => Err("locked"),
        None => Err("unknown user"),
        Some(_) if !password_matches => Err("wrong password"),
        Some(user) if user.disabled => Err("account disabled"),
        Some(user) => Ok(user),
    };
    match outcome {
        Ok(user) => {
            // This attempt and the account's earlier failures; the address keeps its count.
            sqlx::query("DELETE FROM sign_in_failures WHERE user_name = $1")
                .bind(&user.name)
                .execute(store.pool())
                .await?;
            Ok(user)
        }
        Err(reason) => {
            record_failure(store, &actor, failure_action, reason, locked, now).await?;
            Err(AuthError::SignInFailed)
        }
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
    let user = check_password(
        &console.store,
        raw_name,
        password,
        client_addr,
        "auth.sign_in_failed",
    )
    .await?;
    let store = &console.store;
    let actor = Actor {
        name: user.name.clone(),
        client_addr: client_addr.to_owned(),
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
                signed_in_at: now_epoch(),
                deadline_moved_at: now_epoch(),
            },
        )
        .await
        .map_err(session_failure)?;
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

/// What an attempt counts against: its account, when it names one, and its address.
/// Names of no account share one marker, so they count against the address only.
fn throttled(actor: &Actor) -> Vec<(Scope, &str)> {
    let account = (actor.name != UNKNOWN_ACCOUNT).then_some((Scope::Account, actor.name.as_str()));
    account
        .into_iter()
        .chain([(Scope::Address, actor.client_addr.as_str())])
        .collect()
}

/// Forgets attempts older than any lock remembers; they count for nothing. Run by the
/// console's sweeper, so the table stays small without work on every sign-in.
pub async fn forget_old_attempts(store: &Store) -> Result<(), AuthError> {
    sqlx::query("DELETE FROM sign_in_failures WHERE failed_at < $1")
        .bind(now_epoch() - LOCK_LEVEL_MEMORY_SECS)
        .execute(store.pool())
        .await?;
    Ok(())
}

async fn record_attempt(store: &Store, actor: &Actor, now: i64) -> Result<(), AuthError> {
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
    Ok(())
}

/// Whether `subject` is locked: by a lock in force, or because the attempts counted since
/// its window opened — this one included — are past its limit. Every attempt is recorded
/// before it is counted, so of N parallel attempts the k-th to be stored counts at least k,
/// and no more than the limit get to the password check.
async fn is_locked(
    store: &Store,
    scope: Scope,
    subject: &str,
    now: i64,
) -> Result<bool, AuthError> {
    let lock = previous_lock(store.pool(), scope, subject).await?;
    if lock.is_some_and(|(_, until)| until > now) {
        return Ok(true);
    }
    Ok(failures_since_window(store.pool(), scope, subject, lock, now).await? > scope.limit())
}

async fn previous_lock<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    scope: Scope,
    subject: &str,
) -> Result<Option<(i64, i64)>, AuthError> {
    Ok(
        sqlx::query_as(
            "SELECT level, locked_until FROM lockouts WHERE scope = $1 AND subject = $2",
        )
        .bind(scope.as_str())
        .bind(subject)
        .fetch_optional(db)
        .await?,
    )
}

/// Failures counted against `subject`: since the window opened or its last lock ended.
async fn failures_since_window<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    scope: Scope,
    subject: &str,
    lock: Option<(i64, i64)>,
    now: i64,
) -> Result<i64, AuthError> {
    let counted_since = lock
        .map(|(_, until)| until)
        .unwrap_or(0)
        .max(now - FAILURE_WINDOW_SECS);
    let (failures,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM sign_in_failures WHERE {} = $1 AND failed_at >= $2",
        scope.failure_column()
    ))
    .bind(subject)
    .bind(counted_since)
    .fetch_one(db)
    .await?;
    Ok(failures)
}

/// Audits a failed attempt (already recorded by [`record_attempt`]) and locks its account
/// or address when that reached the limit — one transaction, so parallel failures decide
/// their locks one after the other.
async fn record_failure(
    store: &Store,
    actor: &Actor,
    action: &str,
    reason: &str,
    already_locked: bool,
    now: i64,
) -> Result<(), AuthError> {
    let mut audited = Audited::begin(store).await?;
    audited
        .append(actor, action, &actor.name, json!({ "reason": reason }))
        .await?;
    // Attempts during a lock are recorded but do not extend it.
    if !already_locked {
        for (scope, subject) in throttled(actor) {
            if let Some((level, seconds)) =
                lock_if_over_limit(audited.db(), scope, subject, now).await?
            {
                audited
                    .append(
                        &Actor::system(),
                        "auth.lockout",
                        &format!("{}:{subject}", scope.as_str()),
                        json!({ "level": level, "seconds": seconds, "client_addr": actor.client_addr }),
                    )
                    .await?;
            }
        }
    }
    Ok(audited.commit().await?)
}

/// Locks `subject` when it has reached its failure limit since the window opened or its
/// last lock ended; returns the lock level and length.
async fn lock_if_over_limit(
    db: &mut sqlx::AnyConnection,
    scope: Scope,
    subject: &str,
    now: i64,
) -> Result<Option<(i64, i64)>, AuthError> {
    let previous = previous_lock(&mut *db, scope, subject).await?;
    if previous.is_some_and(|(_, until)| until > now)
        || failures_since_window(&mut *db, scope, subject, previous, now).await? < scope.limit()
    {
        return Ok(None);
    }
    let level = match previous {
        Some((level, until)) if now - until < LOCK_LEVEL_MEMORY_SECS => level + 1,
        _ => 0,
    };
    let seconds = lock_seconds(level);
    sqlx::query(
        "INSERT INTO lockouts (scope, subject, level, locked_at, locked_until, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (scope, subject) DO UPDATE SET level = excluded.level, \
         locked_at = excluded.locked_at, locked_until = excluded.locked_until",
    )
    .bind(scope.as_str())
    .bind(subject)
    .bind(level)
    .bind(now)
    .bind(now + seconds)
    .bind(now_utc())
    .execute(db)
    .await?;
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
    let mut audited = Audited::begin(store).await?;
    let user = users::insert(audited.db(), &name, role, &hash).await?;
    audited
        .append(actor, "user.added", &user.name, json!({ "role": role }))
        .await?;
    audited.commit().await?;
    Ok(super::UserSummary {
        id: user.id,
        name: user.name,
        role: user.role,
        disabled: user.disabled,
        created_at: now_utc(),
    })
}

/// Begins an audited change of the user `user_id`, read inside it.
async fn change_of(
    store: &Store,
    user_id: &str,
) -> Result<(Audited, users::StoredUser), AuthError> {
    let mut audited = Audited::begin(store).await?;
    let user = users::find_by_id(audited.db(), user_id)
        .await?
        .ok_or(AuthError::UnknownUser)?;
    Ok((audited, user))
}

/// The console must keep one active admin: refuses to demote or disable the last one.
/// Checked inside the change's transaction, so two admins demoting each other at once
/// cannot both succeed.
async fn keep_an_admin(audited: &mut Audited, user: &users::StoredUser) -> Result<(), AuthError> {
    if user.role == Role::Admin
        && !user.disabled
        && users::other_active_admins(audited.db(), &user.id).await? == 0
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
    let (mut audited, user) = change_of(store, user_id).await?;
    if user.role == role {
        return Ok(());
    }
    if role != Role::Admin {
        keep_an_admin(&mut audited, &user).await?;
    }
    users::set_role(audited.db(), &user.id, role).await?;
    audited
        .append(
            actor,
            "user.role_changed",
            &user.name,
            json!({ "from": user.role, "to": role }),
        )
        .await?;
    Ok(audited.commit().await?)
}

pub async fn set_disabled(
    store: &Store,
    actor: &Actor,
    user_id: &str,
    disabled: bool,
) -> Result<(), AuthError> {
    let (mut audited, user) = change_of(store, user_id).await?;
    if user.disabled == disabled {
        return Ok(());
    }
    if disabled {
        keep_an_admin(&mut audited, &user).await?;
    }
    users::set_disabled(audited.db(), &user.id, disabled).await?;
    let action = if disabled {
        "user.disabled"
    } else {
        "user.enabled"
    };
    audited.append(actor, action, &user.name, json!({})).await?;
    Ok(audited.commit().await?)
}

pub async fn reset_password(
    store: &Store,
    actor: &Actor,
    user_id: &str,
    new_password: String,
) -> Result<(), AuthError> {
    check_new_password(&new_password).map_err(AuthError::Invalid)?;
    // Hashed before the change begins: the audit lock is never held through argon2.
    let hash = password::hash(new_password).await?;
    let (mut audited, user) = change_of(store, user_id).await?;
    users::set_password_hash(audited.db(), &user.id, &hash).await?;
    audited
        .append(actor, "user.password_reset", &user.name, json!({}))
        .await?;
    Ok(audited.commit().await?)
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
