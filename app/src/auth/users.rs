//! The `users` table. Changes take the connection of the audited transaction they belong
//! to (`audit::service::Audited::db`).

use sqlx::AnyConnection;

use crate::store::{now_utc, Store};

use super::{AuthError, Role, UserName, UserSummary};

/// A user as stored, hash included: never leaves the server.
#[derive(Clone, Debug)]
pub struct StoredUser {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub disabled: bool,
    pub session_generation: i64,
}

type Row = (String, String, String, String, i64, i64);
const COLUMNS: &str = "id, name, role, password_hash, disabled, session_generation";

fn from_row((id, name, role, password_hash, disabled, session_generation): Row) -> StoredUser {
    StoredUser {
        id,
        name,
        // Only this module writes the column, always from a `Role`.
        role: role.parse().unwrap_or(Role::Viewer),
        password_hash,
        disabled: disabled != 0,
        session_generation,
    }
}

pub async fn insert(
    db: &mut AnyConnection,
    name: &UserName,
    role: Role,
    password_hash: &str,
) -> Result<StoredUser, AuthError> {
    let taken = || AuthError::Conflict(format!("A user named {} exists already.", name.as_str()));
    let now = now_utc();
    let user = StoredUser {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.as_str().to_owned(),
        role,
        password_hash: password_hash.to_owned(),
        disabled: false,
        session_generation: 1,
    };
    sqlx::query(
        "INSERT INTO users (id, name, role, password_hash, disabled, session_generation, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&user.id)
    .bind(&user.name)
    .bind(role.as_str())
    .bind(password_hash)
    .bind(0_i64)
    .bind(user.session_generation)
    .bind(&now)
    .bind(&now)
    .execute(db)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => taken(),
        _ => error.into(),
    })?;
    Ok(user)
}

pub async fn find_by_name(store: &Store, name: &str) -> Result<Option<StoredUser>, AuthError> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE name = $1"))
        .bind(name)
        .fetch_optional(store.pool())
        .await?;
    Ok(row.map(from_row))
}

/// The user with this id, read through `db`: the pool, or an audited change's connection.
pub async fn find_by_id<'c>(
    db: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
) -> Result<Option<StoredUser>, AuthError> {
    let row: Option<Row> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(from_row))
}

pub async fn list(store: &Store) -> Result<Vec<UserSummary>, AuthError> {
    let rows: Vec<(String, String, String, i64, String)> =
        sqlx::query_as("SELECT id, name, role, disabled, created_at FROM users ORDER BY name")
            .fetch_all(store.pool())
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, role, disabled, created_at)| UserSummary {
            id,
            name,
            role: role.parse().unwrap_or(Role::Viewer),
            disabled: disabled != 0,
            created_at,
        })
        .collect())
}

/// Active admins other than `except`: the console must always keep one.
pub async fn other_active_admins(db: &mut AnyConnection, except: &str) -> Result<i64, AuthError> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM users WHERE role = $1 AND disabled = $2 AND id <> $3")
            .bind(Role::Admin.as_str())
            .bind(0_i64)
            .bind(except)
            .fetch_one(db)
            .await?;
    Ok(count)
}

pub async fn set_role(db: &mut AnyConnection, id: &str, role: Role) -> Result<(), AuthError> {
    sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
        .bind(role.as_str())
        .bind(now_utc())
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Disabling ends every session of the account; enabling does not bring them back.
pub async fn set_disabled(
    db: &mut AnyConnection,
    id: &str,
    disabled: bool,
) -> Result<(), AuthError> {
    sqlx::query(
        "UPDATE users SET disabled = $1, session_generation = session_generation + 1, updated_at = $2 WHERE id = $3",
    )
    .bind(i64::from(disabled))
    .bind(now_utc())
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// A new password ends every session of the account.
pub async fn set_password_hash(
    db: &mut AnyConnection,
    id: &str,
    hash: &str,
) -> Result<(), AuthError> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, session_generation = session_generation + 1, updated_at = $2 WHERE id = $3",
    )
    .bind(hash)
    .bind(now_utc())
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}
