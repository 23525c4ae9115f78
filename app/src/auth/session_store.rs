//! tower-sessions' store on the console's own database (SQLite or PostgreSQL through sqlx
//! `Any`). Rows are keyed by a SHA-256 of the session id; expired rows are never loaded
//! and are deleted continuously.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use crate::store::{now_epoch, now_utc, Store};

#[derive(Clone, Debug)]
pub struct SqlSessionStore {
    store: Store,
}

impl SqlSessionStore {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn key(id: &Id) -> String {
    hex::encode(Sha256::digest(id.to_string().as_bytes()))
}

fn encode(record: &Record) -> session_store::Result<String> {
    serde_json::to_string(&record.data)
        .map_err(|error| session_store::Error::Encode(error.to_string()))
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn backend(error: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for SqlSessionStore {
    /// Inserts a new session. Ids are 128 random bits; still, a clash never overwrites a
    /// live session: the insert fails on the key and the id is drawn again.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = encode(record)?;
        for _ in 0..3 {
            let inserted = sqlx::query(
                "INSERT INTO sessions (id_hash, data, expires_at, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(key(&record.id))
            .bind(&data)
            .bind(record.expiry_date.unix_timestamp())
            .bind(now_utc())
            .execute(self.store.pool())
            .await;
            match inserted {
                Ok(_) => return Ok(()),
                Err(error) if is_unique_violation(&error) => record.id = Id::default(),
                Err(error) => return Err(backend(error)),
            }
        }
        Err(session_store::Error::Backend(
            "no free session id after three draws".into(),
        ))
    }

    /// Updates a session that still exists, and only that: a request that loaded the
    /// session before it was signed out (or expired) cannot bring it back by saving.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        sqlx::query(
            "UPDATE sessions SET data = $1, expires_at = $2 WHERE id_hash = $3 AND expires_at > $4",
        )
        .bind(encode(record)?)
        .bind(record.expiry_date.unix_timestamp())
        .bind(key(&record.id))
        .bind(now_epoch())
        .execute(self.store.pool())
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT data, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2",
        )
        .bind(key(id))
        .bind(now_epoch())
        .fetch_optional(self.store.pool())
        .await
        .map_err(backend)?;
        let Some((data, expires_at)) = row else {
            return Ok(None);
        };
        let data = serde_json::from_str(&data)
            .map_err(|error| session_store::Error::Decode(error.to_string()))?;
        let expiry_date = time::OffsetDateTime::from_unix_timestamp(expires_at)
            .map_err(|error| session_store::Error::Decode(error.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(key(id))
            .execute(self.store.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for SqlSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now_epoch())
            .execute(self.store.pool())
            .await
            .map_err(backend)?;
        Ok(())
    }
}
