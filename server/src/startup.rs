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
}

/// Where the console keeps its state, from the flags.
pub fn store_location(args: &StoreArgs) -> StoreLocation {
    // An empty DATABASE_URL, as `DATABASE_URL=` leaves it, means "not set".
    match args.database_url.as_deref().map(str::trim) {
        Some(url) if !url.is_empty() => StoreLocation::Url(url.to_owned()),
        _ => StoreLocation::DataDir(args.data_dir.clone()),
    }
}

/// Opens the store and migrates it.
pub async fn open_store(args: &StoreArgs) -> Result<Store, StartupError> {
    Ok(Store::open(&store_location(args)).await?)
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
}

/// Reads `--public-url`, or derives it from the listen address. Plain http is refused
/// unless the host is loopback: session cookies must not cross a network unencrypted.
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
    if !https && !loopback {
        return Err(fail(
            "plain http is only allowed on a loopback host (127.0.0.1, ::1, localhost)",
        ));
    }
    Ok(PublicUrl {
        origin: parsed.origin().ascii_serialization(),
        https,
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
                https: false
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
                https: true
            }
        );
    }

    #[test]
    fn plain_http_to_the_network_is_refused() {
        assert!(public_url(&serve_args(&[]), bound("0.0.0.0:3000")).is_err());
        let args = serve_args(&["--public-url", "http://slipway.example.com"]);
        assert!(public_url(&args, bound("127.0.0.1:3000")).is_err());
    }
}
