//! Reading back what a migrate run applied, from the migrations table in the database.

use crate::runs::executor::{StepContext, StepLog};
use crate::stacks::compose::ServiceDefinition;
use crate::stacks::lifecycle;

/// `text` as an SQL string literal; callers have checked it holds only name characters.
fn sql_text(text: &str) -> String {
    format!("$q${text}$q$")
}

impl<'a> StepContext<'a> {
    /// The newest rows of the service's migrations table, read in the database container.
    pub(in crate::runs) async fn verify_migrations(
        &self,
        service: &ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        // Checked to be a plain name when the compose file was read.
        let table = service.migrations_table.as_deref().unwrap_or_default();
        let database = self
            .definition
            .services
            .iter()
            .find(|s| s.backup.as_deref() == Some("pg_dump"))
            .ok_or("no PostgreSQL service (backup: pg_dump) to read the records from")?;
        let container =
            lifecycle::running_container(self.engine, &self.stack.project, &database.name)
                .await
                .map_err(|e| e.to_string())?;
        // Slipway reads the records as Prisma keeps them; another shape is named, not guessed.
        let columns = lifecycle::psql(
            self.engine,
            &container,
            &format!(
                "SELECT column_name FROM information_schema.columns WHERE table_name = {}",
                sql_text(table)
            ),
        )
        .await?;
        let has = |column: &str| columns.lines().any(|line| line.trim() == column);
        if !has("migration_name") || !has("finished_at") {
            return Err(format!(
                "{table} has no migration_name and finished_at columns: migrations_table must \
                 name a table shaped like Prisma's _prisma_migrations"
            ));
        }
        let sql = format!(
            "SELECT migration_name, finished_at FROM {table} ORDER BY finished_at DESC LIMIT 5"
        );
        let rows = lifecycle::psql(self.engine, &container, &sql).await?;
        let records: Vec<&str> = rows.lines().filter(|l| !l.trim().is_empty()).collect();
        if records.is_empty() {
            return Err(format!("{table} has no records"));
        }
        for record in records {
            log.say(record).await?;
        }
        Ok(())
    }
}

/// The migrations applied since run `run_id` of `stack` finished, newest first: the finished
/// records of the migrations table above the head that run ran with — the head a backup of
/// the database recorded between that run's end and the end of the stack's next change (the
/// next change's own first backup is taken before it changes anything). Without such a
/// backup the head is unknown and nothing is undone. Every name is checked here, so a request
/// with a name Slipway will not pass to a command is refused before anything runs.
pub async fn migrations_since_run(
    store: &crate::store::Store,
    engine: &crate::stacks::engine::Engine,
    stack: &crate::stacks::StackSummary,
    definition: &crate::stacks::compose::StackDefinition,
    run_id: &str,
) -> Result<Vec<String>, String> {
    let database = definition
        .services
        .iter()
        .find(|s| s.backup.is_some())
        .ok_or("no database service (backup: pg_dump) holds the migration records")?;
    let table = definition
        .migrations_table()
        .ok_or("no service names its migrations_table")?;
    let then: Option<(String,)> = sqlx::query_as(
        "SELECT b.migration_head FROM backups b JOIN runs r ON r.id = $2 AND r.stack = b.stack \
         WHERE b.stack = $1 AND b.service = $3 AND b.started_at >= r.finished_at \
         AND b.migration_head <> '' \
         AND b.started_at <= COALESCE((SELECT MIN(n.finished_at) FROM runs n WHERE n.stack = $1 \
             AND n.started_at > r.finished_at AND n.finished_at <> '' \
             AND n.operation IN ('deploy', 'update', 'migrate', 'rollback', 'restore')), '9999') \
         ORDER BY b.started_at LIMIT 1",
    )
    .bind(&stack.name)
    .bind(run_id)
    .bind(&database.name)
    .fetch_optional(store.pool())
    .await
    .map_err(|error| error.to_string())?;
    let (head_then,) = then.ok_or_else(|| {
        format!("the migration head run {run_id} ran with is unknown: no backup was taken after it")
    })?;
    let container = lifecycle::running_container(engine, &stack.project, &database.name)
        .await
        .map_err(|error| error.to_string())?;
    let records = lifecycle::psql(
        engine,
        &container,
        &format!(
            "SELECT migration_name FROM {table} WHERE finished_at IS NOT NULL \
             ORDER BY finished_at DESC, migration_name DESC"
        ),
    )
    .await?;
    let records: Vec<&str> = records.lines().map(str::trim).collect();
    let Some(position) = records.iter().position(|name| *name == head_then) else {
        return Err(format!(
            "the head run {run_id} ran with ({head_then}) is not in {table} any more"
        ));
    };
    if let Some(odd) = records[..position].iter().find(|name| !undoable(name)) {
        return Err(format!("{odd:?} is not a migration name Slipway can undo"));
    }
    Ok(records[..position]
        .iter()
        .map(|name| name.to_string())
        .collect())
}

/// A migration name that may go into a command and an SQL literal: letters, digits, `_`,
/// `.` and `-`, not starting with `-` (an option) nor holding `..` (a path).
fn undoable(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

impl<'a> StepContext<'a> {
    /// Undoes the migrations applied since the rollback's target run, newest first: each one's
    /// rollback command in the service's current image (the newer image knows its own
    /// rollback SQL), then its record removed from the migrations table.
    pub(in crate::runs) async fn undo_migrations(
        &self,
        service: &ServiceDefinition,
        log: &StepLog<'_>,
    ) -> Result<(), String> {
        let project = self.stack.project.as_str();
        // The definition as the compose file has it: a rollback's own has the older images.
        let current =
            crate::stacks::service::definition(self.stack).map_err(|error| error.to_string())?;
        let current = current
            .service(&service.name)
            .ok_or_else(|| format!("{} is no longer in the compose file", service.name))?;
        let command = current
            .rollback_migration
            .clone()
            .ok_or_else(|| format!("{} names no rollback_migration command", service.name))?;
        let table = self
            .definition
            .migrations_table()
            .ok_or("no service names its migrations_table")?;
        let undo = migrations_since_run(
            &log.handle.store,
            self.engine,
            self.stack,
            self.definition,
            &log.handle.run.target,
        )
        .await?;
        if undo.is_empty() {
            return log
                .say("no migration was applied since: nothing to undo")
                .await;
        }
        let database = self
            .definition
            .services
            .iter()
            .find(|s| s.backup.is_some())
            .ok_or("no database service holds the migration records")?;
        let container = lifecycle::running_container(self.engine, project, &database.name)
            .await
            .map_err(|error| error.to_string())?;
        // Where to go back to when an undo fails halfway: the backup this run took first.
        let taken = self
            .taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_default();
        let halfway = |error: String| {
            format!(
                "{error}. The app services are stopped; the database as it was before this run is backup {taken}: `slipway restore {} {taken} --recorded-images --force` asks to put it back",
                self.stack.name
            )
        };
        for migration in &undo {
            let line: Vec<String> = command
                .iter()
                .map(|arg| arg.replace("{migration}", migration))
                .collect();
            let code = lifecycle::run_once(
                self.engine,
                project,
                current,
                &self.compose_dir,
                &line,
                |said| log.say(said),
            )
            .await
            .map_err(|error| halfway(error.to_string()))?;
            if code != 0 {
                return Err(halfway(format!("{} exited with {code}", line.join(" "))));
            }
            lifecycle::psql(
                self.engine,
                &container,
                &format!(
                    "DELETE FROM {table} WHERE migration_name = {}",
                    sql_text(migration)
                ),
            )
            .await
            .map_err(halfway)?;
            log.say(format!("undid {migration} and removed its record"))
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::undoable;

    #[test]
    fn only_plain_migration_names_are_undone() {
        assert!(undoable("20240301_invoice_due_dates"));
        assert!(undoable("v1.2-add-index"));
        for odd in ["", "-rf", "../etc", "a b", "x;y", "$q$", "name'"] {
            assert!(!undoable(odd), "{odd:?}");
        }
    }
}
