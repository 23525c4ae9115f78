//! Writing, reading and verifying the audit trail. Each entry's hash covers its fields and
//! the previous entry's hash, so changing or removing a row breaks the chain after it.

use sha2::{Digest, Sha256};

use crate::store::{now_utc, Store, StoreError};

use super::{AuditEvent, AuditFilter};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Attempts at appending when another writer took the same sequence number.
const APPEND_ATTEMPTS: usize = 8;

/// Who did something and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub client_addr: String,
}

impl Actor {
    /// The console itself, for changes no person asked for.
    pub fn system() -> Self {
        Self {
            name: "slipway".into(),
            client_addr: "local".into(),
        }
    }

    /// Someone at the machine's shell, through the `slipway` command.
    pub fn command_line() -> Self {
        let user = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown".into());
        Self {
            name: format!("cli:{user}"),
            client_addr: "local".into(),
        }
    }
}

/// Appends one entry and returns it. Never pass a password, token or session id in `detail`.
#[tracing::instrument(skip_all, fields(action, target))]
pub async fn append(
    store: &Store,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<AuditEvent, StoreError> {
    let detail = detail.to_string();
    let mut last_error = None;
    for _ in 0..APPEND_ATTEMPTS {
        match try_append(store, actor, action, target, &detail).await {
            Ok(event) => return Ok(event),
            // Another writer took this sequence number first: read the new head and retry.
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Err(last_error.expect("at least one attempt").into())
}

async fn try_append(
    store: &Store,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<AuditEvent, sqlx::Error> {
    let mut tx = store.pool().begin().await?;
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let mut event = AuditEvent {
        seq,
        at: now_utc(),
        actor: actor.name.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        client_addr: actor.client_addr.clone(),
        detail: detail.to_owned(),
        prev_hash,
        hash: String::new(),
    };
    event.hash = chain_hash(&event);
    sqlx::query(
        "INSERT INTO audit_events \
         (seq, at, actor, action, target, client_addr, detail, prev_hash, hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(event.seq)
    .bind(&event.at)
    .bind(&event.actor)
    .bind(&event.action)
    .bind(&event.target)
    .bind(&event.client_addr)
    .bind(&event.detail)
    .bind(&event.prev_hash)
    .bind(&event.hash)
    .bind(&event.at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(event)
}

/// The hash an entry must carry: SHA-256 over its fields and the previous hash.
pub fn chain_hash(event: &AuditEvent) -> String {
    let mut hasher = Sha256::new();
    for field in [
        event.seq.to_string().as_str(),
        &event.at,
        &event.actor,
        &event.action,
        &event.target,
        &event.client_addr,
        &event.detail,
        &event.prev_hash,
    ] {
        // Length-prefixed, so that moving text between fields changes the hash.
        hasher.update((field.len() as u64).to_be_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

const COLUMNS: &str = "seq, at, actor, action, target, client_addr, detail, prev_hash, hash";

type Row = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);

fn from_row(row: Row) -> AuditEvent {
    let (seq, at, actor, action, target, client_addr, detail, prev_hash, hash) = row;
    AuditEvent {
        seq,
        at,
        actor,
        action,
        target,
        client_addr,
        detail,
        prev_hash,
        hash,
    }
}

/// Entries matching the filter, newest first.
pub async fn list(store: &Store, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
    // Empty filter fields match everything; `$n = ''` keeps one statement for all cases.
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM audit_events \
         WHERE ($1 = '' OR actor = $1) AND ($2 = '' OR action LIKE $2 || '%') \
         AND ($3 = '' OR target LIKE '%' || $3 || '%') \
         ORDER BY seq DESC LIMIT $4"
    ))
    .bind(filter.actor.trim())
    .bind(filter.action.trim())
    .bind(filter.target.trim())
    .bind(filter.limit.clamp(1, 1000))
    .fetch_all(store.pool())
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// The outcome of checking the whole chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainReport {
    Intact { entries: i64 },
    Broken { seq: i64, reason: String },
}

/// Walks the chain from the first entry and names the first one that does not fit.
pub async fn verify(store: &Store) -> Result<ChainReport, StoreError> {
    const PAGE: i64 = 500;
    let mut expected_prev = GENESIS_HASH.to_owned();
    let mut expected_seq = 1;
    loop {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2"
        ))
        .bind(expected_seq)
        .bind(PAGE)
        .fetch_all(store.pool())
        .await?;
        let fetched = rows.len() as i64;
        for event in rows.into_iter().map(from_row) {
            if let Some(reason) = defect(&event, expected_seq, &expected_prev) {
                return Ok(ChainReport::Broken {
                    seq: expected_seq.min(event.seq),
                    reason,
                });
            }
            expected_prev = event.hash;
            expected_seq += 1;
        }
        if fetched < PAGE {
            return Ok(ChainReport::Intact {
                entries: expected_seq - 1,
            });
        }
    }
}

fn defect(event: &AuditEvent, expected_seq: i64, expected_prev: &str) -> Option<String> {
    if event.seq != expected_seq {
        return Some(format!("entry {expected_seq} is missing"));
    }
    if event.prev_hash != expected_prev {
        return Some("its link to the previous entry does not match".into());
    }
    if chain_hash(event) != event.hash {
        return Some("its contents were changed after it was written".into());
    }
    None
}
