//! Server half of health: how often a stack is probed (an admin's setting, audited), and the
//! now-view pages and `slipway health` show.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::service::{Actor, Audited};
use crate::store::{Store, StoreError};

use super::{series, HealthError, ServiceProbes, StackHealth};

/// How often a stack without a setting of its own is probed.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(15);
/// The shortest and longest intervals an admin may set.
pub const EVERY_AT_LEAST: Duration = Duration::from_secs(2);
pub const EVERY_AT_MOST: Duration = Duration::from_secs(3600);
/// Recent results on a service's page.
const RECENT: i64 = 50;

/// How often the stack is probed.
pub async fn interval(store: &Store, stack: &str) -> Result<Duration, StoreError> {
    let every: Option<(i64,)> =
        sqlx::query_as("SELECT every_seconds FROM health_settings WHERE stack = $1")
            .bind(stack)
            .fetch_optional(store.pool())
            .await?;
    Ok(every
        .and_then(|(seconds,)| u64::try_from(seconds).ok())
        .map_or(DEFAULT_EVERY, Duration::from_secs))
}

/// Sets how often the stack is probed; audited as `stack.probe_interval_set`.
pub async fn set_interval(
    store: &Store,
    actor: &Actor,
    stack: &str,
    every: Duration,
) -> Result<Duration, HealthError> {
    if every < EVERY_AT_LEAST || every > EVERY_AT_MOST {
        return Err(HealthError::Invalid(format!(
            "probe every {} s to {} s",
            EVERY_AT_LEAST.as_secs(),
            EVERY_AT_MOST.as_secs()
        )));
    }
    let stack = crate::stacks::service::find(store, stack)
        .await
        .map_err(|_| HealthError::NotFound(stack.to_owned()))?;
    let seconds = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
    let mut audited = Audited::begin(store).await?;
    sqlx::query(
        "INSERT INTO health_settings (stack, every_seconds) VALUES ($1, $2) \
         ON CONFLICT (stack) DO UPDATE SET every_seconds = excluded.every_seconds",
    )
    .bind(&stack.name)
    .bind(seconds)
    .execute(audited.db())
    .await
    .map_err(StoreError::from)?;
    audited
        .append(
            actor,
            "stack.probe_interval_set",
            &stack.name,
            json!({ "every_seconds": seconds }),
        )
        .await?;
    audited.commit().await?;
    Ok(Duration::from_secs(every.as_secs()))
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
            every_seconds: i64::try_from(interval(store, &summary.name).await?.as_secs())
                .unwrap_or(i64::MAX),
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
