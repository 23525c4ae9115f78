//! Server half of health: how often a stack is probed (an admin's setting, audited), and the
//! now-view pages and `slipway health` show.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::store::{now_utc, Store, StoreError};

use super::{series, HealthError, HealthPolicy, OnFailedVerification, ServiceProbes, StackHealth};

/// The shortest and longest probe intervals, and the longest watch window, an admin may set.
pub const EVERY_AT_LEAST: i64 = 2;
pub const EVERY_AT_MOST: i64 = 3600;
pub const WATCH_AT_MOST: i64 = 3600;
/// Recent results on a service's page.
const RECENT: i64 = 50;

/// The watch window of stacks without a policy of their own, in seconds; set once by the
/// process (`--watch-default`).
static DEFAULT_WATCH: std::sync::OnceLock<i64> = std::sync::OnceLock::new();

/// Sets the watch window of stacks without a policy of their own (the first call counts).
pub fn set_default_watch(watch: Duration) {
    let _ = DEFAULT_WATCH.set(i64::try_from(watch.as_secs()).unwrap_or(WATCH_AT_MOST));
}

/// The policy of a stack no admin has set.
fn default_policy() -> HealthPolicy {
    let defaults = HealthPolicy::default();
    HealthPolicy {
        watch_seconds: DEFAULT_WATCH
            .get()
            .copied()
            .unwrap_or(defaults.watch_seconds),
        ..defaults
    }
}

/// The stack's health policy, or the defaults.
pub async fn policy(store: &Store, stack: &str) -> Result<HealthPolicy, StoreError> {
    let row: Option<(i64, i64, String, String, String)> = sqlx::query_as(
        "SELECT every_seconds, watch_seconds, on_failed_verification, set_by, set_at \
         FROM health_policies WHERE stack = $1",
    )
    .bind(stack)
    .fetch_optional(store.pool())
    .await?;
    Ok(match row {
        Some((every_seconds, watch_seconds, on_failed, set_by, set_at)) => HealthPolicy {
            every_seconds,
            watch_seconds,
            on_failed_verification: OnFailedVerification::parse(&on_failed).unwrap_or_default(),
            set_by,
            set_at,
        },
        None => default_policy(),
    })
}

/// How often the stack is probed.
pub async fn interval(store: &Store, stack: &str) -> Result<Duration, StoreError> {
    let every = policy(store, stack).await?.every_seconds;
    Ok(Duration::from_secs(u64::try_from(every).unwrap_or(15)))
}

/// Sets the stack's health policy (its `set_by` and `set_at` are the actor and now); audited
/// as `stack.health_policy_set`. Returns it as stored.
pub async fn set_policy(
    store: &Store,
    actor: &Actor,
    stack: &str,
    policy: HealthPolicy,
) -> Result<HealthPolicy, HealthError> {
    if !(EVERY_AT_LEAST..=EVERY_AT_MOST).contains(&policy.every_seconds) {
        return Err(HealthError::Invalid(format!(
            "probe every {EVERY_AT_LEAST} s to {EVERY_AT_MOST} s"
        )));
    }
    if !(0..=WATCH_AT_MOST).contains(&policy.watch_seconds) {
        return Err(HealthError::Invalid(format!(
            "watch a change for 0 s to {WATCH_AT_MOST} s"
        )));
    }
    let stack = crate::stacks::service::find(store, stack)
        .await
        .map_err(|_| HealthError::NotFound(stack.to_owned()))?;
    let stored = HealthPolicy {
        set_by: actor.name.clone(),
        set_at: now_utc(),
        ..policy
    };
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "INSERT INTO health_policies (stack, every_seconds, watch_seconds, \
         on_failed_verification, set_by, set_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (stack) DO UPDATE SET every_seconds = excluded.every_seconds, \
         watch_seconds = excluded.watch_seconds, \
         on_failed_verification = excluded.on_failed_verification, \
         set_by = excluded.set_by, set_at = excluded.set_at",
    )
    .bind(&stack.name)
    .bind(stored.every_seconds)
    .bind(stored.watch_seconds)
    .bind(stored.on_failed_verification.as_str())
    .bind(&stored.set_by)
    .bind(&stored.set_at)
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    audited
        .append(
            actor,
            "stack.health_policy_set",
            &stack.name,
            json!({
                "every_seconds": stored.every_seconds,
                "watch_seconds": stored.watch_seconds,
                "on_failed_verification": stored.on_failed_verification.as_str(),
            }),
        )
        .await?;
    audited.commit().await?;
    Ok(stored)
}

/// Every stack (or one, named) with its probes' newest results as of `now`.
pub async fn now_view(
    store: &Store,
    stack: &str,
    now: DateTime<Utc>,
) -> Result<Vec<StackHealth>, HealthError> {
    let stacks = if stack.is_empty() {
        crate::stacks::service::list(store)
            .await
            .map_err(|_| HealthError::Unavailable)?
    } else {
        vec![crate::stacks::service::find(store, stack)
            .await
            .map_err(|_| HealthError::NotFound(stack.to_owned()))?]
    };
    let mut probes = series::now_view(store, stack, now).await?;
    let mut view = Vec::new();
    for summary in stacks {
        let (mine, rest) = probes.into_iter().partition(|p| p.stack == summary.name);
        probes = rest;
        view.push(StackHealth {
            policy: policy(store, &summary.name).await?,
            stack: summary.name,
            probes: mine,
        });
    }
    Ok(view)
}

/// One service's probes and its recent results with their evidence.
pub async fn service_view(
    store: &Store,
    stack: &str,
    service: &str,
    now: DateTime<Utc>,
) -> Result<ServiceProbes, HealthError> {
    if stack.is_empty() {
        return Err(HealthError::NotFound(format!("/{service}")));
    }
    let probes: Vec<_> = series::now_view(store, stack, now)
        .await?
        .into_iter()
        .filter(|probe| probe.service == service)
        .collect();
    let recent = series::recent(store, stack, service, RECENT).await?;
    if probes.is_empty() && recent.is_empty() {
        return Err(HealthError::NotFound(format!("{stack}/{service}")));
    }
    Ok(ServiceProbes {
        stack: stack.to_owned(),
        service: service.to_owned(),
        probes,
        recent,
    })
}
