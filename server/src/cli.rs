//! Command-line interface. Every flag has an environment variable, so the console can be
//! configured the same way from a shell, a unit file or a container.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "slipway",
    version,
    about = "Slipway: the release console for Docker applications"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web console.
    Serve(ServeArgs),
}

#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SLIPWAY_ADDR", default_value = "127.0.0.1:3000", value_parser = parse_listen_addr)]
    pub addr: SocketAddr,

    /// Directory for the embedded SQLite store (and, later, backups).
    #[arg(long, env = "SLIPWAY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Keep the console's state in this database instead (postgres://…).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Built web assets (CSS, WASM); by default `site` next to the binary's target folder.
    #[arg(long, env = "SLIPWAY_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
}

fn parse_listen_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| {
        "expected an IP address and port such as 127.0.0.1:3000 (set with --addr or SLIPWAY_ADDR)"
            .to_owned()
    })
}

/// One line for a command-line mistake: clap's first line, without its own prefix.
pub fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let first = rendered
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid command line");
    first.trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_address_needs_a_port() {
        assert!(parse_listen_addr("127.0.0.1:3000").is_ok());
        let message = parse_listen_addr("localhost").unwrap_err();
        assert!(message.contains("127.0.0.1:3000"), "{message}");
    }

    #[test]
    fn a_bad_flag_is_reported_on_one_line_naming_the_value() {
        let error = Cli::try_parse_from(["slipway", "serve", "--addr", "nowhere"]).unwrap_err();
        let line = one_line(&error);
        assert!(
            line.contains("'nowhere'") && line.contains("--addr"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
