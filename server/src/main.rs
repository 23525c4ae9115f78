//! `slipway`: parses the command line, sets up logging and runs the chosen command.
//! Any failure ends as one line on stderr and a non-zero exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use server::cli::{one_line, Cli, Command};
use server::startup::StartupError;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(),
        Err(error) => {
            eprintln!("slipway: {}", one_line(&error));
            return ExitCode::from(2);
        }
    };
    if let Err(error) = init_logging() {
        eprintln!("slipway: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("slipway: cannot start the async runtime ({error})");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => server::serve::serve(args).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("slipway: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() -> Result<(), StartupError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) => {
            EnvFilter::try_new(&spec).map_err(|e| StartupError::LogFilter(e.to_string()))?
        }
        Err(_) => EnvFilter::new("info,tower_http=warn"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}
