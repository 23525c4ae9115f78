//! The console's own database: one pool over SQLite (the embedded default) or PostgreSQL
//! (the scale-out store). The same migrations and the same SQL run on both, through
//! sqlx's `Any` driver; `$1` placeholders work on both.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, Connection};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long to wait for a connection before telling the user the database is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database engine holds the console's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Where the console keeps its state, as chosen on the command line or in the environment.
#[derive(Clone, Debug)]
pub enum StoreLocation {
    /// `slipway.db` inside this directory, created when missing.
    DataDir(PathBuf),
    /// A `postgres://` (or `sqlite:`) URL.
    Url(String),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the data directory {} is not usable ({source}); choose a writable directory with \
         --data-dir or SLIPWAY_DATA_DIR",
        path.display()
    )]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the database URL {shown} is not supported; use postgres://USER:PASSWORD@HOST:PORT/DB \
         or sqlite:PATH in --database-url or DATABASE_URL"
    )]
    UnsupportedUrl { shown: String },
    #[error(
        "cannot reach the database at {shown} ({source}); check that it is running and that \
         --database-url or DATABASE_URL names it"
    )]
    Unreachable { shown: String, source: sqlx::Error },
    #[error("cannot bring the database at {shown} up to date ({source}); nothing was changed")]
    Migration {
        shown: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("the console's database did not answer")]
    Query(#[from] sqlx::Error),
    #[error("the audit key is not loaded, so the audit trail can be neither written nor checked")]
    NoAuditKey,
}

/// A handle on the console's database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    shown: String,
    /// The address with its password, for connections the pool cannot give (a listener).
    address: Hidden,
    /// The audit trail's key, kept outside the database (see `audit::key`).
    audit_key: Option<std::sync::Arc<crate::audit::key::AuditKey>>,
}

impl Store {
    /// Opens the store, creating the SQLite file when needed, and applies pending migrations.
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        install_default_drivers();
        let (url, shown) = match location {
            StoreLocation::DataDir(dir) => {
                prepare_data_dir(dir)?;
                let file = dir.join("slipway.db");
                (sqlite_url(&file), file.display().to_string())
            }
            StoreLocation::Url(url) => (url.clone(), redact_url(url)),
        };
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::UnsupportedUrl { shown });
        };

        let unreachable = |source| StoreError::Unreachable {
            shown: shown.clone(),
            source,
        };
        // One plain connection first: a pool retries until its timeout and then reports
        // only that it timed out, hiding "connection refused" or "wrong password".
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, AnyConnection::connect(&url))
            .await
            .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
            .map_err(unreachable)?;
        probe.close().await.map_err(unreachable)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect(&url)
            .await
            .map_err(unreachable)?;
        if backend == Backend::Sqlite {
            // Readers never wait for the writer; the setting stays with the file.
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(unreachable)?;
        }
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migration {
                shown: shown.clone(),
                source,
            })?;
        install_triggers(&pool, backend)
            .await
            .map_err(|source| StoreError::Migration {
                shown: shown.clone(),
                source: sqlx::migrate::MigrateError::Execute(source),
            })?;
        Ok(Self {
            pool,
            backend,
            shown,
            address: Hidden(url),
            audit_key: None,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// This handle with the audit trail's key: appending and verifying need it.
    pub fn with_audit_key(mut self, key: crate::audit::key::AuditKey) -> Self {
        self.audit_key = Some(std::sync::Arc::new(key));
        self
    }

    pub fn audit_key(&self) -> Option<std::sync::Arc<crate::audit::key::AuditKey>> {
        self.audit_key.clone()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// On PostgreSQL, a connection that hears `NOTIFY` on `channel`; `None` on SQLite.
    pub async fn listener(
        &self,
        channel: &str,
    ) -> Result<Option<sqlx::postgres::PgListener>, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(None);
        }
        let mut listener = sqlx::postgres::PgListener::connect(&self.address.0).await?;
        listener.listen(channel).await?;
        Ok(Some(listener))
    }

    /// The store's location with any password hidden: safe for pages and logs.
    pub fn shown_location(&self) -> &str {
        &self.shown
    }

    /// Runs a trivial query and returns how long the round trip took.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let started = Instant::now();
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(started.elapsed())
    }

    /// How many migrations have been applied to this store.
    pub async fn migrations_applied(&self) -> Result<i64, StoreError> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = $1")
                .bind(true)
                .fetch_one(&self.pool)
                .await?;
        Ok(count)
    }

    /// Closes every connection; pending queries finish first.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A value kept out of `Debug` output: the store's address holds its password.
#[derive(Clone)]
struct Hidden(String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(hidden)")
    }
}

/// The channel on which PostgreSQL tells listeners which run changed (its id): a line
/// written, a step or the run's status changed — by this console, another one or the
/// command line. See `runs::changes`.
pub const RUN_CHANGES_CHANNEL: &str = "slipway_run_changes";

/// Tables whose rows may be added but never changed or removed.
const APPEND_ONLY_TABLES: &[&str] = &["audit_events"];

/// Makes the database itself refuse UPDATE and DELETE on append-only tables, and (on
/// PostgreSQL) say on [`RUN_CHANGES_CHANNEL`] which run changed. Trigger syntax is the one
/// thing SQLite and PostgreSQL do not share, so these statements live here rather than in the
/// shared migrations; each is idempotent and runs at every start.
async fn install_triggers(pool: &AnyPool, backend: Backend) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Sqlite => {
            for table in APPEND_ONLY_TABLES {
                for verb in ["UPDATE", "DELETE"] {
                    sqlx::raw_sql(&format!(
                        "CREATE TRIGGER IF NOT EXISTS {table}_no_{verb} BEFORE {verb} ON {table} \
                         BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                    ))
                    .execute(pool)
                    .await?;
                }
            }
            Ok(())
        }
        Backend::Postgres => install_postgres_triggers(pool).await,
    }
}

/// PostgreSQL's triggers, each created only when missing — creating one locks its table
/// against writes, and every command-line start opens the store —, by one process at a time
/// (an advisory lock: consoles starting together would collide on the functions).
async fn install_postgres_triggers(pool: &AnyPool) -> Result<(), sqlx::Error> {
    let functions = [
        "CREATE OR REPLACE FUNCTION slipway_refuse_change() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN \
         RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
            .to_owned(),
        format!(
            "CREATE OR REPLACE FUNCTION slipway_notify_run_change() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN \
             PERFORM pg_notify('{RUN_CHANGES_CHANNEL}', NEW.run_id); RETURN NULL; END $$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION slipway_notify_run_row_change() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN \
             PERFORM pg_notify('{RUN_CHANGES_CHANNEL}', NEW.id); RETURN NULL; END $$"
        ),
    ];
    let mut triggers = Vec::new();
    for table in APPEND_ONLY_TABLES {
        triggers.push((
            format!("{table}_append_only"),
            format!("BEFORE UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION slipway_refuse_change()"),
        ));
        triggers.push((
            format!("{table}_no_truncate"),
            format!("BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION slipway_refuse_change()"),
        ));
    }
    for (table, events, function) in [
        ("run_lines", "INSERT", "slipway_notify_run_change"),
        ("run_steps", "INSERT OR UPDATE", "slipway_notify_run_change"),
        ("runs", "UPDATE", "slipway_notify_run_row_change"),
    ] {
        triggers.push((
            format!("{table}_changed"),
            format!("AFTER {events} ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()"),
        ));
    }
    let mut transaction = pool.begin().await?;
    sqlx::raw_sql("SELECT pg_advisory_xact_lock(7354210981)")
        .execute(&mut *transaction)
        .await?;
    let present: Vec<String> =
        sqlx::query_scalar("SELECT tgname::text FROM pg_trigger WHERE NOT tgisinternal")
            .fetch_all(&mut *transaction)
            .await?;
    let missing: Vec<_> = triggers
        .iter()
        .filter(|(name, _)| !present.contains(name))
        .collect();
    if !missing.is_empty() {
        for function in &functions {
            sqlx::raw_sql(function).execute(&mut *transaction).await?;
        }
        for (name, definition) in missing {
            sqlx::raw_sql(&format!("CREATE TRIGGER {name} {definition}"))
                .execute(&mut *transaction)
                .await?;
        }
    }
    transaction.commit().await
}

/// Seconds since the Unix epoch, the store's unit for expiries and rate windows.
pub fn now_epoch() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The current time as the store keeps it: UTC, millisecond precision, sortable as text.
pub fn now_utc() -> String {
    utc_text(chrono::Utc::now())
}

/// Text as the store keeps what others wrote (a command's output, an answer's body): control
/// characters — a NUL, which PostgreSQL's text refuses; a terminal's escape — shown as
/// `\u{fffd}`; tabs kept.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// A time the store (or the engine) wrote as RFC 3339, in UTC; `None` for anything else.
pub fn parse_utc(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|at| at.with_timezone(&chrono::Utc))
}

/// A time in the store's text form, which sorts as time does.
pub fn utc_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Makes sure the directory exists and that files can be created in it, so that the
/// failure is a clear sentence before anything is written.
fn prepare_data_dir(dir: &Path) -> Result<(), StoreError> {
    let fail = |source| StoreError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".slipway-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}?mode=rwc", file.display())
}

/// Replaces the password of a database URL so it can be shown and logged.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) if raw.contains('@') => "(a URL that could not be read)".to_owned(),
        Err(_) => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{printable, redact_url};

    #[test]
    fn text_from_others_is_stored_without_control_characters() {
        assert_eq!(
            printable("a\0b\x1b[31mred\tok é"),
            "a\u{fffd}b\u{fffd}[31mred\tok é"
        );
    }

    #[test]
    fn a_password_never_survives_redaction() {
        let shown = redact_url("postgres://slipway:s3cret-pass@127.0.0.1:5432/slipway");
        assert_eq!(shown, "postgres://slipway:***@127.0.0.1:5432/slipway");
    }

    #[test]
    fn a_url_without_password_is_shown_as_is() {
        assert_eq!(
            redact_url("postgres://127.0.0.1/slipway"),
            "postgres://127.0.0.1/slipway"
        );
    }

    #[test]
    fn an_unreadable_url_with_credentials_is_not_echoed() {
        let shown = redact_url("postgres://user:pa ss@[bad");
        assert!(!shown.contains("pa ss"), "{shown}");
    }
}
