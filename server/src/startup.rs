//! Turning configuration into a running console, with one clear sentence for each way
//! that can fail. Checks run before anything is written: the port first, then the store.

use std::net::SocketAddr;
use std::path::PathBuf;

use app::store::{Store, StoreError, StoreLocation};

use crate::cli::{ServeArgs, StoreArgs};

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
    #[error(transparent)]
    AuditKey(#[from] app::audit::key::AuditKeyError),
    #[error(
        "RUST_LOG is not a valid log filter ({0}); use a level such as RUST_LOG=info or \
         RUST_LOG=debug"
    )]
    LogFilter(String),
    #[error(
        "the public URL {url} is not usable: {reason}; set --public-url or SLIPWAY_PUBLIC_URL \
         to https://… (behind a TLS proxy), or listen on a loopback address for plain http"
    )]
    PublicUrl { url: String, reason: &'static str },
    #[error(
        "refusing to serve plain http on {addr}, which the network can reach: passwords and \
         session cookies would cross it unencrypted; put a TLS proxy in front and set \
         --public-url https://…, listen on 127.0.0.1, or pass --insecure-http \
         (SLIPWAY_INSECURE_HTTP=true) to accept the risk"
    )]
    PlainHttpToNetwork { addr: SocketAddr },
    #[error("cannot use the metrics token file {}: {reason}", path.display())]
    MetricsToken {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Where the console keeps its state, from the flags.
pub fn store_location(args: &StoreArgs) -> StoreLocation {
    // An empty DATABASE_URL, as `DATABASE_URL=` leaves it, means "not set".
    match args.database_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => StoreLocation::Url(url.to_owned()),
        _ => StoreLocation::DataDir(args.data_dir.clone()),
    }
}

/// Opens the store, migrates it and loads the audit key (created on first use).
pub async fn open_store(args: &StoreArgs) -> Result<Store, StartupError> {
    app::health::service::set_default_watch(args.watch_default);
    let store = Store::open(&store_location(args)).await?;
    Ok(app::audit::service::with_key(store, &audit_key_file(args)).await?)
}

/// Where backups go: the flag, or `backups` in the data directory.
pub fn backup_dir(args: &StoreArgs) -> PathBuf {
    args.backup_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("backups"))
}

/// The audit key's file: the flag, or `audit.key` in the data directory.
pub fn audit_key_file(args: &StoreArgs) -> PathBuf {
    args.audit_key_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join("audit.key"))
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

/// How people reach the console: decides cookie security and the expected `Origin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port]`, as browsers send it in `Origin`.
    pub origin: String,
    /// Served over https: cookies get `Secure` and the `__Host-` prefix.
    pub https: bool,
    /// Plain http that the network can reach, allowed by `--insecure-http`.
    pub insecure: bool,
}

/// Reads `--public-url`, or derives it from the listen address. Plain http is refused
/// unless both the URL's host and the listen address are loopback (session cookies must
/// not cross a network unencrypted), or `--insecure-http` says to serve it anyway.
pub fn public_url(args: &ServeArgs, bound: SocketAddr) -> Result<PublicUrl, StartupError> {
    let raw = match args.public_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => url.to_owned(),
        _ => format!("http://{bound}"),
    };
    let fail = |reason| StartupError::PublicUrl {
        url: raw.clone(),
        reason,
    };
    let parsed = url::Url::parse(&raw)
        .map_err(|_| fail("it is not a URL such as https://slipway.example.com"))?;
    let https = match parsed.scheme() {
        "https" => true,
        "http" => false,
        _ => return Err(fail("only http and https are served")),
    };
    let loopback = match parsed.host() {
        Some(url::Host::Domain(domain)) => domain == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(fail("it names no host")),
    };
    let private = loopback && bound.ip().is_loopback();
    let insecure = !(https || private);
    if insecure && !args.insecure_http {
        if !loopback {
            return Err(fail(
                "plain http is only allowed on a loopback host (127.0.0.1, ::1, localhost)",
            ));
        }
        return Err(StartupError::PlainHttpToNetwork { addr: bound });
    }
    Ok(PublicUrl {
        origin: parsed.origin().ascii_serialization(),
        https,
        insecure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["slipway", "serve"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    fn bound(addr: &str) -> SocketAddr {
        addr.parse().unwrap()
    }

    #[test]
    fn loopback_http_is_the_development_default() {
        let url = public_url(&serve_args(&[]), bound("127.0.0.1:3000")).unwrap();
        assert_eq!(
            url,
            PublicUrl {
                origin: "http://127.0.0.1:3000".into(),
                https: false,
                insecure: false,
            }
        );
    }

    #[test]
    fn https_gives_secure_cookies() {
        let args = serve_args(&["--public-url", "https://slipway.example.com/"]);
        let url = public_url(&args, bound("0.0.0.0:3000")).unwrap();
        assert_eq!(
            url,
            PublicUrl {
                origin: "https://slipway.example.com".into(),
                https: true,
                insecure: false,
            }
        );
    }

    #[test]
    fn plain_http_to_the_network_is_refused() {
        assert!(public_url(&serve_args(&[]), bound("0.0.0.0:3000")).is_err());
        let args = serve_args(&["--public-url", "http://slipway.example.com"]);
        assert!(public_url(&args, bound("127.0.0.1:3000")).is_err());
    }

    #[test]
    fn a_loopback_public_url_does_not_make_a_network_listener_safe() {
        let args = serve_args(&["--public-url", "http://127.0.0.1:3000"]);
        let refused = public_url(&args, bound("0.0.0.0:3000")).unwrap_err();
        assert!(refused.to_string().contains("--insecure-http"), "{refused}");
        let args = serve_args(&["--public-url", "http://127.0.0.1:3000", "--insecure-http"]);
        let allowed = public_url(&args, bound("0.0.0.0:3000")).unwrap();
        assert!(allowed.insecure && !allowed.https);
    }
}
