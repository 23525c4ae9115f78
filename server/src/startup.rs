//! Turning configuration into a running console, with one clear sentence for each way
//! that can fail. Checks run before anything is written: the port first, then the store.

use std::net::SocketAddr;
use std::path::PathBuf;

use app::store::{Store, StoreError, StoreLocation};

use crate::cli::ServeArgs;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "cannot listen on {addr} ({source}); stop whatever holds that port or choose another \
         address with --addr or SLIPWAY_ADDR"
    )]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "RUST_LOG is not a valid log filter ({0}); use a level such as RUST_LOG=info or \
         RUST_LOG=debug"
    )]
    LogFilter(String),
}

/// Where the console keeps its state, from the flags.
pub fn store_location(args: &ServeArgs) -> StoreLocation {
    // An empty DATABASE_URL, as `DATABASE_URL=` leaves it, means "not set".
    match args.database_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => StoreLocation::Url(url.to_owned()),
        _ => StoreLocation::DataDir(args.data_dir.clone()),
    }
}

/// The built web assets: the flag, or `target/site` beside `target/<profile>/slipway`.
pub fn site_root(args: &ServeArgs) -> PathBuf {
    if let Some(root) = &args.site_root {
        return root.clone();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("site")))
        .filter(|candidate| candidate.join("pkg").is_dir())
        .unwrap_or_else(|| PathBuf::from("target/site"))
}

/// Opens the store and migrates it.
pub async fn open_store(args: &ServeArgs) -> Result<Store, StartupError> {
    Ok(Store::open(&store_location(args)).await?)
}
