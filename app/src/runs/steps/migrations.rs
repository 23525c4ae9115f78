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
