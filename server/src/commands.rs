//! The commands besides `serve`: they open the same store and call the same services.

use std::io::{BufRead, IsTerminal};

use app::audit::service::{verify, Actor, ChainReport};
use app::auth::{service, AuthError, Role};

use crate::cli::StoreArgs;
use crate::startup::{open_store, StartupError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("cannot read the password from standard input ({0})")]
    Input(std::io::Error),
    #[error("the two passwords differ; nothing was changed")]
    Mismatch,
    #[error("audit trail broken at entry {seq}: {reason}")]
    BrokenChain { seq: i64, reason: String },
}

/// `slipway user add NAME --role ROLE`: the password comes from standard input, unechoed
/// and asked twice on a terminal, as one line from a pipe.
pub async fn add_user(
    name: &str,
    role: Role,
    store_args: &StoreArgs,
) -> Result<String, CommandError> {
    let password = read_new_password()?;
    let store = open_store(store_args).await?;
    let outcome = service::add_user(&store, &Actor::command_line(), name, role, password).await;
    store.close().await;
    let user = outcome?;
    Ok(format!("added {} as {}", user.name, user.role))
}

fn read_new_password() -> Result<String, CommandError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(CommandError::Input)?;
        let second = rpassword::prompt_password("Again: ").map_err(CommandError::Input)?;
        if first != second {
            return Err(CommandError::Mismatch);
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(CommandError::Input)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// `slipway audit verify`: walks the chain; a broken chain is an error naming the entry.
pub async fn verify_audit(store_args: &StoreArgs) -> Result<String, CommandError> {
    let store = open_store(store_args).await?;
    let report = verify(&store).await;
    store.close().await;
    match report.map_err(StartupError::from)? {
        ChainReport::Intact { entries } => Ok(format!("audit trail intact: {entries} entries")),
        ChainReport::Broken { seq, reason } => Err(CommandError::BrokenChain { seq, reason }),
    }
}
