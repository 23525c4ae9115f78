//! Server half of runs: the per-stack lock, the executor that runs steps and stores every
//! line before anyone sees it, and recovery of runs whose process died.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::json;

use crate::audit::service::{append, Actor};
use crate::stacks::compose::{self, StackDefinition};
use crate::stacks::engine::Engine;
use crate::stacks::{lifecycle, StackSummary};
use crate::store::{now_utc, Store, StoreError};

use super::{Operation, RunDetail, RunError, RunLine, RunStep, RunSummary};

/// This process, as run holders are written: `host:pid`.
pub fn this_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether the process behind `holder` still runs; only this host's processes can be checked.
fn holder_alive(holder: &str) -> bool {
    let this_host = this_holder();
    let this_host = this_host.split(':').next().unwrap_or_default();
    match holder.rsplit_once(':') {
        Some((host, pid)) if host == this_host => Path::new(&format!("/proc/{pid}")).exists(),
        _ => true,
    }
}

fn store_error(error: sqlx::Error) -> RunError {
    RunError::from(StoreError::from(error))
}

/// A run in progress: every line and step change goes to the store first.
pub struct RunHandle {
    store: Store,
    pub run: RunSummary,
    next_seq: AtomicI64,
    /// Print lines to stdout as well (the command line).
    echo: bool,
    released: bool,
}

/// Takes the stack's lock and records a new run; refused while another run holds the stack.
pub async fn begin(
    store: &Store,
    stack: &StackSummary,
    operation: Operation,
    actor: &Actor,
    echo: bool,
) -> Result<RunHandle, RunError> {
    let now = now_utc();
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        stack: stack.name.clone(),
        operation,
        status: "running".into(),
        requested_by: actor.name.clone(),
        started_at: now.clone(),
        finished_at: String::new(),
        error: String::new(),
    };
    let holder = this_holder();
    let mut tx = store.pool().begin().await.map_err(store_error)?;
    let locked = sqlx::query(
        "INSERT INTO stack_locks (stack, run_id, holder, requested_by, since, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&run.stack)
    .bind(&run.id)
    .bind(&holder)
    .bind(&run.requested_by)
    .bind(&now)
    .bind(&now)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(db)) = &locked {
        if db.is_unique_violation() {
            drop(tx);
            return Err(busy(store, &run.stack).await);
        }
    }
    locked.map_err(store_error)?;
    sqlx::query(
        "INSERT INTO runs (id, stack, operation, status, requested_by, holder, started_at, finished_at, error, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, '', '', $8)",
    )
    .bind(&run.id)
    .bind(&run.stack)
    .bind(run.operation.as_str())
    .bind(&run.status)
    .bind(&run.requested_by)
    .bind(&holder)
    .bind(&now)
    .bind(&now)
    .execute(&mut *tx)
    .await
    .map_err(store_error)?;
    tx.commit().await.map_err(store_error)?;
    append(
        store,
        actor,
        "run.started",
        &run.stack,
        json!({ "run": run.id, "operation": run.operation.as_str() }),
    )
    .await?;
    Ok(RunHandle {
        store: store.clone(),
        run,
        next_seq: AtomicI64::new(1),
        echo,
        released: false,
    })
}

/// Who holds a busy stack, in words.
async fn busy(store: &Store, stack: &str) -> RunError {
    let holder: Option<(String, String, String)> =
        sqlx::query_as("SELECT run_id, requested_by, since FROM stack_locks WHERE stack = $1")
            .bind(stack)
            .fetch_optional(store.pool())
            .await
            .unwrap_or(None);
    match holder {
        Some((run, who, since)) => RunError::Busy(format!(
            "stack {stack} is busy: run {run}, started by {who} at {since}; wait for it or cancel it"
        )),
        None => RunError::Busy(format!("stack {stack} is busy; try again in a moment")),
    }
}

impl RunHandle {
    /// Records the steps the run will take, all pending.
    pub async fn plan(&self, names: &[String]) -> Result<(), RunError> {
        for (index, name) in names.iter().enumerate() {
            sqlx::query(
                "INSERT INTO run_steps (run_id, position, name, status, started_at, finished_at, created_at) \
                 VALUES ($1, $2, $3, 'pending', '', '', $4)",
            )
            .bind(&self.run.id)
            .bind(index as i64)
            .bind(name)
            .bind(now_utc())
            .execute(self.store.pool())
            .await
            .map_err(store_error)?;
        }
        Ok(())
    }

    async fn set_step(&self, position: i64, status: &str) -> Result<(), RunError> {
        let column = if status == "running" {
            "started_at"
        } else {
            "finished_at"
        };
        sqlx::query(&format!(
            "UPDATE run_steps SET status = $1, {column} = $2 WHERE run_id = $3 AND position = $4"
        ))
        .bind(status)
        .bind(now_utc())
        .bind(&self.run.id)
        .bind(position)
        .execute(self.store.pool())
        .await
        .map_err(store_error)?;
        Ok(())
    }

    /// Stores one line of step `step`'s output.
    pub async fn line(&self, step: i64, text: &str) -> Result<(), RunError> {
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        sqlx::query(
            "INSERT INTO run_lines (run_id, seq, step, at, text, created_at) VALUES ($1, $2, $3, $4, $5, $4)",
        )
        .bind(&self.run.id)
        .bind(seq)
        .bind(step)
        .bind(now_utc())
        .bind(text)
        .execute(self.store.pool())
        .await
        .map_err(store_error)?;
        if self.echo {
            println!("  {text}");
        }
        Ok(())
    }

    /// Ends the run, frees the stack and audits the outcome.
    async fn finish(mut self, outcome: &Result<(), String>) -> Result<RunSummary, RunError> {
        let (status, error) = match outcome {
            Ok(()) => ("succeeded", String::new()),
            Err(error) => ("failed", error.clone()),
        };
        let now = now_utc();
        sqlx::query("UPDATE runs SET status = $1, finished_at = $2, error = $3 WHERE id = $4")
            .bind(status)
            .bind(&now)
            .bind(&error)
            .bind(&self.run.id)
            .execute(self.store.pool())
            .await
            .map_err(store_error)?;
        release(&self.store, &self.run.id).await?;
        self.released = true;
        self.run.status = status.into();
        self.run.finished_at = now;
        self.run.error = error;
        let actor = Actor::system();
        append(
            &self.store,
            &actor,
            "run.finished",
            &self.run.stack,
            json!({ "run": self.run.id, "status": self.run.status, "error": self.run.error }),
        )
        .await?;
        Ok(self.run.clone())
    }
}

impl Drop for RunHandle {
    /// A run dropped before it finished (a panic, a cancelled task) still frees its stack.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (store, run_id) = (self.store.clone(), self.run.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = sqlx::query("UPDATE runs SET status = 'interrupted', finished_at = $1 WHERE id = $2 AND status = 'running'")
                    .bind(now_utc())
                    .bind(&run_id)
                    .execute(store.pool())
                    .await;
                let _ = release(&store, &run_id).await;
            });
        }
    }
}

async fn release(store: &Store, run_id: &str) -> Result<(), RunError> {
    sqlx::query("DELETE FROM stack_locks WHERE run_id = $1")
        .bind(run_id)
        .execute(store.pool())
        .await
        .map_err(store_error)?;
    Ok(())
}

/// The steps of an operation on this stack.
fn steps(operation: Operation, definition: &StackDefinition) -> Result<Vec<String>, RunError> {
    let order =
        lifecycle::dependency_order(definition).map_err(|e| RunError::Stack(e.to_string()))?;
    let mut names = vec!["Prepare the network and volumes".to_owned()];
    match operation {
        Operation::Start => names.extend(order.iter().map(|s| format!("Start {}", s.name))),
        Operation::Stop => names.extend(order.iter().rev().map(|s| format!("Stop {}", s.name))),
    }
    Ok(names)
}

/// Runs every step in order and finishes the run; the first failing step ends it.
#[tracing::instrument(skip_all, fields(run = handle.run.id, stack = stack.name))]
pub async fn execute(
    handle: RunHandle,
    engine: &Engine,
    stack: &StackSummary,
) -> Result<RunSummary, RunError> {
    let outcome = run_steps(&handle, engine, stack).await;
    handle.finish(&outcome).await
}

async fn run_steps(
    handle: &RunHandle,
    engine: &Engine,
    stack: &StackSummary,
) -> Result<(), String> {
    let definition = compose::load(
        Path::new(&stack.compose_file),
        stack.env_file.as_deref().map(Path::new),
    )
    .map_err(|error| error.to_string())?;
    let names = steps(handle.run.operation, &definition).map_err(|e| e.to_string())?;
    handle.plan(&names).await.map_err(|e| e.to_string())?;
    let compose_dir = Path::new(&stack.compose_file)
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let order = lifecycle::dependency_order(&definition).map_err(|e| e.to_string())?;
    let services: Vec<_> = match handle.run.operation {
        Operation::Start => order,
        Operation::Stop => order.into_iter().rev().collect(),
    };
    for (position, name) in names.iter().enumerate() {
        let position = position as i64;
        handle
            .set_step(position, "running")
            .await
            .map_err(|e| e.to_string())?;
        if handle.echo {
            println!("{name}");
        }
        let result: Result<String, String> = if position == 0 {
            lifecycle::prepare(engine, &definition, &stack.project)
                .await
                .map(|()| format!("network {}_default ready", stack.project))
                .map_err(|e| e.to_string())
        } else {
            let service = services[(position - 1) as usize];
            match handle.run.operation {
                Operation::Start => {
                    lifecycle::start_service(engine, &stack.project, service, &compose_dir)
                        .await
                        .map(|started| format!("{}: {started:?}", service.name).to_lowercase())
                        .map_err(|e| e.to_string())
                }
                Operation::Stop => lifecycle::stop_service(engine, &stack.project, service)
                    .await
                    .map(|stopped| format!("{}: stopped {stopped} container(s)", service.name))
                    .map_err(|e| e.to_string()),
            }
        };
        let (status, text) = match &result {
            Ok(text) => ("succeeded", text.clone()),
            Err(error) => ("failed", error.clone()),
        };
        handle
            .line(position, &text)
            .await
            .map_err(|e| e.to_string())?;
        handle
            .set_step(position, status)
            .await
            .map_err(|e| e.to_string())?;
        result?;
    }
    Ok(())
}

/// At console start: runs whose process is gone are marked interrupted at the step they were
/// on, and their stacks freed. Returns how many.
pub async fn recover_interrupted(store: &Store) -> Result<usize, StoreError> {
    let running: Vec<(String, String)> =
        sqlx::query_as("SELECT id, holder FROM runs WHERE status = 'running'")
            .fetch_all(store.pool())
            .await?;
    let mut recovered = 0;
    for (id, holder) in running
        .into_iter()
        .filter(|(_, holder)| !holder_alive(holder))
    {
        let now = now_utc();
        sqlx::query("UPDATE run_steps SET status = 'interrupted', finished_at = $1 WHERE run_id = $2 AND status = 'running'")
            .bind(&now)
            .bind(&id)
            .execute(store.pool())
            .await?;
        sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = $1, error = $2 WHERE id = $3",
        )
        .bind(&now)
        .bind(format!(
            "the process running it ({holder}) stopped before it finished"
        ))
        .bind(&id)
        .execute(store.pool())
        .await?;
        sqlx::query("DELETE FROM stack_locks WHERE run_id = $1")
            .bind(&id)
            .execute(store.pool())
            .await?;
        append(
            store,
            &Actor::system(),
            "run.interrupted",
            &id,
            json!({ "holder": holder }),
        )
        .await?;
        recovered += 1;
    }
    Ok(recovered)
}

type RunRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
);
const RUN_COLUMNS: &str =
    "id, stack, operation, status, requested_by, started_at, finished_at, error";

fn run_from_row(
    (id, stack, operation, status, requested_by, started_at, finished_at, error): RunRow,
) -> RunSummary {
    RunSummary {
        id,
        stack,
        operation: operation.parse().unwrap_or(Operation::Start),
        status,
        requested_by,
        started_at,
        finished_at,
        error,
    }
}

/// The newest runs, of one stack or of all.
pub async fn list(store: &Store, stack: &str) -> Result<Vec<RunSummary>, RunError> {
    let rows: Vec<RunRow> = sqlx::query_as(&format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE ($1 = '' OR stack = $1) ORDER BY started_at DESC LIMIT 100"
    ))
    .bind(stack)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    Ok(rows.into_iter().map(run_from_row).collect())
}

/// A run with its steps and every stored line.
pub async fn detail(store: &Store, id: &str) -> Result<RunDetail, RunError> {
    let row: Option<RunRow> =
        sqlx::query_as(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"))
            .bind(id)
            .fetch_optional(store.pool())
            .await
            .map_err(store_error)?;
    let run = row
        .map(run_from_row)
        .ok_or_else(|| RunError::NotFound(id.to_owned()))?;
    let steps: Vec<(i64, String, String, String, String)> = sqlx::query_as(
        "SELECT position, name, status, started_at, finished_at FROM run_steps WHERE run_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(store.pool())
    .await
    .map_err(store_error)?;
    let lines: Vec<(i64, i64, String, String)> =
        sqlx::query_as("SELECT seq, step, at, text FROM run_lines WHERE run_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(store.pool())
            .await
            .map_err(store_error)?;
    Ok(RunDetail {
        run,
        steps: steps
            .into_iter()
            .map(
                |(position, name, status, started_at, finished_at)| RunStep {
                    position,
                    name,
                    status,
                    started_at,
                    finished_at,
                },
            )
            .collect(),
        lines: lines
            .into_iter()
            .map(|(seq, step, at, text)| RunLine {
                seq,
                step,
                at,
                text,
            })
            .collect(),
    })
}
