//! `slipway-bench`: figures for `scripts/bench`, measured against a running `slipway serve`
//! on 127.0.0.1. Prints one line per figure; the script puts budgets beside them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    /// The console, e.g. http://127.0.0.1:3000 (all figures but `weight`).
    #[arg(long)]
    base: Option<String>,
    /// A user to sign in as; the password is read from `SLIPWAY_BENCH_PASSWORD`.
    #[arg(long)]
    user: Option<String>,
    #[command(subcommand)]
    figure: Figure,
}

#[derive(Subcommand)]
enum Figure {
    /// p50 and p99 of each page at `clients` concurrent clients sharing one session.
    Pages {
        #[arg(long, default_value_t = 50)]
        clients: usize,
        /// Requests per page, shared among the clients.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Paths, e.g. `/` `/stacks/portal`.
        paths: Vec<String>,
    },
    /// Starts `operation` on `stack` in the console, with `followers` browsers following
    /// the run's stream and the stack's logs; prints the delay from each line written to
    /// its event arriving, and the console's memory (VmRSS of `pid`) before and at most.
    Follow {
        #[arg(long)]
        stack: String,
        #[arg(long, default_value = "deploy")]
        operation: String,
        #[arg(long, default_value_t = 100)]
        followers: usize,
        #[arg(long)]
        pid: u32,
        /// Gives up after this many seconds.
        #[arg(long, default_value_t = 300)]
        within: u64,
    },
    /// What the browser loads for each page of a built site (`target/site/pkg`): the main
    /// WASM, its JavaScript, the chunk loader and the page's chunks (the split manifest), as
    /// gzip -9 and as the brotli files the console sends. One line per page: NAME GZIP_BYTES
    /// BROTLI_BYTES FILES.
    Weight { pkg: PathBuf },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Figure::Weight { pkg } = &cli.figure {
        return weight(pkg);
    }
    let base = cli.base.context("--base")?;
    let user = cli.user.context("--user")?;
    let password = std::env::var("SLIPWAY_BENCH_PASSWORD").context("SLIPWAY_BENCH_PASSWORD")?;
    let client = signed_in(&base, &user, &password).await?;
    match cli.figure {
        Figure::Pages {
            clients,
            requests,
            paths,
        } => {
            for path in paths {
                pages(&client, &base, &path, clients, requests).await?;
            }
            Ok(())
        }
        Figure::Follow {
            stack,
            operation,
            followers,
            pid,
            within,
        } => {
            let within = Duration::from_secs(within);
            tokio::time::timeout(
                within,
                follow(&client, &base, &stack, &operation, followers, pid),
            )
            .await
            .context("the run did not end in time")?
        }
        Figure::Weight { .. } => unreachable!("measured above, without a console"),
    }
}

fn weight(pkg: &Path) -> Result<()> {
    let read = |name: &str| {
        std::fs::read(pkg.join(name))
            .with_context(|| format!("reading {}", pkg.join(name).display()))
    };
    let gzip = |name: &str| -> Result<u64> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&read(name)?)?;
        Ok(encoder.finish()?.len() as u64)
    };
    let brotli = |name: &str| -> Result<u64> { Ok(read(&format!("{name}.br"))?.len() as u64) };
    let manifest: std::collections::BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&read("__wasm_split_manifest.json")?)
            .context("reading the split manifest")?;
    // The chunk loader: `__wasm_split.<hash or placeholder>.js`.
    let loader = std::fs::read_dir(pkg)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .find(|name| name.starts_with("__wasm_split.") && name.ends_with(".js"))
        .context("no chunk loader (__wasm_split.*.js) in the site")?;
    let shared = ["slipway.wasm", "slipway.js", loader.as_str()];
    let (mut shared_gzip, mut shared_brotli) = (0, 0);
    for name in shared {
        shared_gzip += gzip(name)?;
        shared_brotli += brotli(name)?;
    }
    for (split, chunks) in manifest {
        // `__stack_route_view_<hash>` -> `stack`
        let page = split
            .trim_start_matches('_')
            .split("_route_view")
            .next()
            .unwrap_or(&split)
            .to_string();
        let (mut page_gzip, mut page_brotli) = (shared_gzip, shared_brotli);
        for chunk in &chunks {
            let name = format!("{chunk}.wasm");
            page_gzip += gzip(&name)?;
            page_brotli += brotli(&name)?;
        }
        println!(
            "{page} {page_gzip} {page_brotli} {}",
            shared.len() + chunks.len()
        );
    }
    Ok(())
}

async fn signed_in(base: &str, user: &str, password: &str) -> Result<reqwest::Client> {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(256)
        .build()?;
    let response = client
        .post(format!("{base}/api/sign_in"))
        .form(&[("name", user), ("password", password)])
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("signing in as {user}: {}", response.status());
    }
    Ok(client)
}

async fn pages(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    clients: usize,
    requests: usize,
) -> Result<()> {
    let url = format!("{base}{path}");
    // Warm: the first request of a page may fill caches the rest share.
    client.get(&url).send().await?.error_for_status()?;
    let left = Arc::new(std::sync::atomic::AtomicUsize::new(requests));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, left) = (client.clone(), url.clone(), left.clone());
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut failed = Vec::new();
            while left
                .fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| n.checked_sub(1),
                )
                .is_ok()
            {
                let started = Instant::now();
                let failure = match client.get(&url).send().await {
                    Ok(response) if response.status().is_success() => response
                        .bytes()
                        .await
                        .err()
                        .map(|error| format!("body: {error}")),
                    Ok(response) => Some(format!("HTTP {}", response.status().as_u16())),
                    Err(error) => Some(format!("{:#}", anyhow::Error::from(error))),
                };
                times.push(started.elapsed());
                failed.extend(failure);
            }
            (times, failed)
        }));
    }
    let mut times = Vec::new();
    // Why requests failed, with how often: the figure is no use without it.
    let mut failed = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks {
        let (mine, my_failed) = task.await?;
        times.extend(mine);
        for failure in my_failed {
            *failed.entry(failure).or_default() += 1;
        }
    }
    times.sort();
    let reasons: Vec<String> = failed
        .iter()
        .map(|(why, count)| format!("{count}× {why}"))
        .collect();
    println!(
        "{path}\tp50 {:.1} ms\tp99 {:.1} ms\t{} requests\t{} failed{}",
        millis(percentile(&times, 0.50)),
        millis(percentile(&times, 0.99)),
        times.len(),
        failed.values().sum::<usize>(),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join("; "))
        }
    );
    Ok(())
}

async fn follow(
    client: &reqwest::Client,
    base: &str,
    stack: &str,
    operation: &str,
    followers: usize,
    pid: u32,
) -> Result<()> {
    let before = rss_kib(pid)?;
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            while let Ok(rss) = rss_kib(pid) {
                peak.fetch_max(rss, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // The browsers first follow the stack's logs, as its page does, then the run's stream.
    let mut logs = Vec::new();
    for _ in 0..followers {
        let stream = opened(client, &format!("{base}/api/stacks/{stack}/logs/events")).await?;
        logs.push(tokio::spawn(drain(stream)));
    }
    let response = client
        .post(format!("{base}/api/start_run"))
        .form(&[("stack", stack), ("operation", operation)])
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "starting the run: {} {}",
            response.status(),
            response.text().await?
        );
    }
    let id: String = response.json().await?;
    println!("run\t{id}");
    let started = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..followers {
        let stream = opened(client, &format!("{base}/api/runs/{id}/events")).await?;
        runs.push(tokio::spawn(line_delays(stream, chrono::Utc::now())));
    }
    let mut delays = Vec::new();
    let mut status = String::new();
    for run in runs {
        let (mine, ended) = run.await??;
        delays.extend(mine);
        status = ended;
    }
    let run_took = started.elapsed();
    let after = peak.load(std::sync::atomic::Ordering::SeqCst);
    sampler.abort();
    for log in logs {
        log.abort();
    }
    delays.sort();
    println!(
        "live\tp50 {:.1} ms\tp99 {:.1} ms\t{} line events to {followers} followers\trun {status} in {:.1} s",
        millis(percentile(&delays, 0.50)),
        millis(percentile(&delays, 0.99)),
        delays.len(),
        run_took.as_secs_f64()
    );
    println!(
        "memory\tbefore {:.1} MB\tat most {:.1} MB\tgrowth {:.1} MB",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0
    );
    Ok(())
}

/// A live stream, opened as a browser's EventSource opens it.
async fn opened(client: &reqwest::Client, url: &str) -> Result<reqwest::Response> {
    Ok(client.get(url).send().await?.error_for_status()?)
}

/// Reads a stream until it ends or is dropped.
async fn drain(mut response: reqwest::Response) {
    while let Ok(Some(_)) = response.chunk().await {}
}

/// The delay of every `line` event written after `opened`, until the `run` event that says
/// the run ended; returns them and the run's status.
async fn line_delays(
    mut response: reqwest::Response,
    opened: chrono::DateTime<chrono::Utc>,
) -> Result<(Vec<Duration>, String)> {
    let mut delays = Vec::new();
    let mut pending = String::new();
    while let Some(chunk) = response.chunk().await? {
        let arrived = chrono::Utc::now();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let event: String = pending.drain(..end + 2).collect();
            let kind = field(&event, "event").unwrap_or_default();
            let Some(data) = field(&event, "data") else {
                continue;
            };
            // The data is the run's event as its page reads it: {"kind": …, "data": …}.
            let value: serde_json::Value = serde_json::from_str(&data)?;
            let value = &value["data"];
            match kind.as_str() {
                "line" => {
                    let at = value["at"].as_str().unwrap_or_default();
                    let at = chrono::DateTime::parse_from_rfc3339(at)
                        .with_context(|| format!("a line's time: {at}"))?
                        .with_timezone(&chrono::Utc);
                    if at >= opened {
                        delays.push((arrived - at).to_std().unwrap_or_default());
                    }
                }
                "run" => {
                    let status = value["status"].as_str().unwrap_or_default().to_owned();
                    if status != "running" && status != "queued" {
                        return Ok((delays, status));
                    }
                }
                _ => {}
            }
        }
    }
    bail!("the run's stream ended before the run")
}

fn field(event: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    let lines: Vec<&str> = event
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.strip_prefix(' ').unwrap_or(value))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

fn percentile(sorted: &[Duration], at: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * at) as usize).min(sorted.len() - 1)]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
