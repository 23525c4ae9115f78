//! Writing, reading and verifying the audit trail. Each entry's hash — an HMAC under the
//! audit key, which lives outside the store — covers its fields and the previous entry's
//! hash, so changing or removing a row breaks the chain after it, and rebuilding the chain
//! needs the key. The head (newest entry and hash) is exported to the console's log and by
//! `slipway audit head`; `slipway audit verify --head` checks the trail still holds it.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::store::{now_utc, Store, StoreError};

use super::key::{AuditKey, AuditKeyError};

use super::{AuditEvent, AuditFilter};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

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

/// A change and the audit entries that record it, committed together or not at all: a
/// change never stands unaudited. Begin it, make the change on [`Audited::db`], append,
/// commit. Beginning takes the trail's head for the whole transaction, so audited changes
/// queue one behind the other and the chain never forks; inside one, write only through
/// `db` (another connection would wait for this very transaction).
pub struct Audited {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    key: std::sync::Arc<AuditKey>,
}

impl Audited {
    pub async fn begin(store: &Store) -> Result<Self, StoreError> {
        let key = store.audit_key().ok_or(StoreError::NoAuditKey)?;
        let mut tx = store.pool().begin().await?;
        // A write first: it takes the head's lock (SQLite: the database's write lock;
        // PostgreSQL: the head row's) before anything is read.
        sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok(Self { tx, key })
    }

    /// The transaction's connection, for the change being audited.
    pub fn db(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Appends one entry to the trail. Never pass a password, token or session id in
    /// `detail`.
    #[tracing::instrument(skip_all, fields(action, target))]
    pub async fn append(
        &mut self,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<AuditEvent, StoreError> {
        let (head, prev_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&mut *self.tx)
                .await?;
        let mut event = AuditEvent {
            seq: head + 1,
            at: now_utc(),
            actor: actor.name.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            client_addr: actor.client_addr.clone(),
            detail: detail.to_string(),
            prev_hash,
            hash: String::new(),
        };
        event.hash = chain_hash(&event, &self.key);
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
        .execute(&mut *self.tx)
        .await?;
        sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(event.seq)
            .bind(&event.hash)
            .execute(&mut *self.tx)
            .await?;
        // What the team is told of goes out with the change and its entry, or not at all. In
        // a savepoint of its own: a message that cannot be written is logged, and never
        // undoes the change it tells of (a run that could not end would keep its stack).
        if crate::notifications::outbox::may_tell_of(&event.action) {
            let mut savepoint = sqlx::Connection::begin(&mut *self.tx).await?;
            match crate::notifications::outbox::enqueue(&mut savepoint, &event).await {
                Ok(()) => savepoint.commit().await?,
                Err(error) => {
                    tracing::error!(error = %error, cause = ?error, action = event.action, "a notification could not be queued");
                    savepoint.rollback().await?;
                }
            }
        }
        Ok(event)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }

    /// Undoes the change and frees the head at once (a dropped one would wait for the
    /// connection's next use).
    pub async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.tx.rollback().await?)
    }
}

/// Appends one entry on its own, for events that change nothing else in the store (a
/// sign-out, a refused sign-in). Never pass a password, token or session id in `detail`.
pub async fn append(
    store: &Store,
    actor: &Actor,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> Result<AuditEvent, StoreError> {
    let mut audited = Audited::begin(store).await?;
    let event = audited.append(actor, action, target, detail).await?;
    audited.commit().await?;
    Ok(event)
}

/// The hash an entry must carry: an HMAC under the audit key over its fields and the
/// previous hash — plain SHA-256 for entries written before the key existed.
pub fn chain_hash(event: &AuditEvent, key: &AuditKey) -> String {
    let mut message = Vec::new();
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
        message.extend((field.len() as u64).to_be_bytes());
        message.extend(field.as_bytes());
    }
    if event.seq >= key.keyed_from {
        key.sign(&message)
    } else {
        hex::encode(Sha256::digest(&message))
    }
}

/// `store` with the audit key at `path`. A key is created only for a trail that is still
/// empty: a missing key beside existing entries is refused, since a new key could not vouch
/// for them (see [`init_key`] for a store from before keys).
pub async fn with_key(store: Store, path: &Path) -> Result<Store, AuditKeyError> {
    let key = match AuditKey::load(path)? {
        Some(key) => key,
        None => match head(&store)
            .await
            .map_err(|e| AuditKeyError::Store(e.to_string()))?
        {
            None => AuditKey::create(path, 1)?,
            Some((entries, _)) => {
                return Err(AuditKeyError::Missing {
                    path: path.to_path_buf(),
                    entries,
                })
            }
        },
    };
    Ok(store.with_audit_key(key))
}

/// Creates the first audit key of a store whose trail was written without one (an earlier
/// version): entries from the next one on are keyed; the first keyed entry's link anchors
/// the ones before it. Refused when a key exists.
pub async fn init_key(store: &Store, path: &Path) -> Result<AuditKey, AuditKeyError> {
    if AuditKey::load(path)?.is_some() {
        return Err(AuditKeyError::Exists {
            path: path.to_path_buf(),
        });
    }
    let next_seq = head(store)
        .await
        .map_err(|e| AuditKeyError::Store(e.to_string()))?
        .map_or(1, |(seq, _)| seq + 1);
    AuditKey::create(path, next_seq)
}

/// The newest entry's number and hash, if the trail has any.
pub async fn head(store: &Store) -> Result<Option<(i64, String)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
            .fetch_optional(store.pool())
            .await?,
    )
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

/// Walks the chain from the first entry and names the first one that does not fit. With
/// `exported_head` (an entry number and hash exported earlier), the trail must still hold
/// that entry with that hash: a trail cut short or rebuilt with a stolen key fails here.
pub async fn verify(
    store: &Store,
    exported_head: Option<(i64, &str)>,
) -> Result<ChainReport, StoreError> {
    const PAGE: i64 = 500;
    let key = store.audit_key().ok_or(StoreError::NoAuditKey)?;
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
            if let Some(reason) = defect(&event, expected_seq, &expected_prev, &key) {
                return Ok(ChainReport::Broken {
                    seq: expected_seq.min(event.seq),
                    reason,
                });
            }
            if let Some((seq, hash)) = exported_head.filter(|(seq, _)| *seq == event.seq) {
                if event.hash != hash {
                    return Ok(ChainReport::Broken {
                        seq,
                        reason: "it differs from the head exported earlier".into(),
                    });
                }
            }
            expected_prev = event.hash;
            expected_seq += 1;
        }
        if fetched < PAGE {
            let entries = expected_seq - 1;
            if let Some((seq, _)) = exported_head.filter(|(seq, _)| *seq > entries) {
                return Ok(ChainReport::Broken {
                    seq,
                    reason: format!(
                        "it was exported as the head but the trail ends at entry {entries}: \
                         entries were removed"
                    ),
                });
            }
            return Ok(ChainReport::Intact { entries });
        }
    }
}

fn defect(
    event: &AuditEvent,
    expected_seq: i64,
    expected_prev: &str,
    key: &AuditKey,
) -> Option<String> {
    if event.seq != expected_seq {
        return Some(format!("entry {expected_seq} is missing"));
    }
    if event.prev_hash != expected_prev {
        return Some("its link to the previous entry does not match".into());
    }
    if chain_hash(event, key) != event.hash {
        return Some("its contents were changed after it was written".into());
    }
    None
}
