//! `cargo xtask build [--release]`: builds what `cargo leptos build` builds — the browser's WASM
//! and its JavaScript glue in `target/site/pkg`, the style sheet, the public assets and the
//! `slipway` binary — with nothing installed outside the target folder. wasm-bindgen runs as
//! a library (`wasm-bindgen-cli-support`, the exact version of `wasm-bindgen` in Cargo.lock),
//! after `wasm_split_cli_support` has cut the WASM into the chunks each page loads (as
//! `cargo leptos --split` does); release builds are optimised by binaryen (`optimise.mjs`), and
//! their site's files are compressed (`.br`, `.gz`) for the console to send as they are.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

/// The name cargo-leptos gives the site's files (`[[workspace.metadata.leptos]] name`) and
/// that `.cargo/config.toml` passes to the server as `LEPTOS_OUTPUT_NAME`.
const OUTPUT_NAME: &str = "slipway";

#[derive(Parser)]
#[command(about = "Builds Slipway without cargo-leptos")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// The site (target/site) and the `slipway` binary.
    Build {
        /// Optimised: the WASM with the `wasm-release` profile and binaryen, the server with
        /// `release`.
        #[arg(long)]
        release: bool,
        /// Only the site, for `scripts/test`: its `cargo test` builds the binary with the
        /// features the tests unify, so the server is not compiled twice.
        #[arg(long)]
        site_only: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().task {
        Task::Build { release, site_only } => build(release, site_only),
    }
}

fn build(release: bool, site_only: bool) -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the xtask crate lies inside the workspace")?
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let site = target.join("site");
    let started = Instant::now();

    // The server and the WASM build in parallel: their target folders differ (cargo-leptos'
    // `target/front` for the WASM), and the WASM's single-unit link leaves a core idle.
    let mut server = if site_only {
        None
    } else {
        let server = cargo(&root)
            .args(["build", "--package", "server", "--bin", "slipway"])
            .args(release.then_some("--release"))
            .spawn()
            .context("starting `cargo build` of the server")?;
        Some(server)
    };
    let front = build_front(&root, &target, &site, release);
    if let (Err(_), Some(server)) = (&front, &mut server) {
        // Said at once: the server's build would only delay the error.
        let _ = server.kill();
    }
    let server_status = server
        .as_mut()
        .map_or(Ok(()), |server| wait(server, "building the server"));
    front?;
    server_status?;
    copy_assets(&root, &site)?;
    if release {
        let compress_started = Instant::now();
        precompress(&site.join("pkg"))?;
        eprintln!(
            "compressed the site's files in {:.0} s",
            compress_started.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "built target/site{} ({}) in {:.0} s",
        if site_only {
            ""
        } else {
            " and the slipway binary"
        },
        if release { "release" } else { "debug" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn build_front(root: &Path, target: &Path, site: &Path, release: bool) -> Result<()> {
    let front_target = target.join("front");
    let profile = if release { "wasm-release" } else { "dev" };
    let mut wasm_build = cargo(root)
        .args([
            "build",
            "--package",
            "app",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .args([
            "--no-default-features",
            "--features",
            "hydrate",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(&front_target)
        .spawn()
        .context("starting `cargo build` of the WASM")?;
    wait(&mut wasm_build, "building the WASM")?;

    let profile_dir = if release { "wasm-release" } else { "debug" };
    let wasm = front_target
        .join("wasm32-unknown-unknown")
        .join(profile_dir)
        .join("app.wasm");
    let pkg = site.join("pkg");
    // Made anew: nothing of an earlier build (a file since removed, snippets) is served.
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg).with_context(|| format!("emptying {}", pkg.display()))?;
    }
    std::fs::create_dir_all(&pkg).with_context(|| format!("creating {}", pkg.display()))?;
    let split_started = Instant::now();
    let chunks = split(&wasm, &pkg)?;
    eprintln!(
        "split the WASM into {} chunks in {:.0} s",
        chunks.len(),
        split_started.elapsed().as_secs_f64()
    );
    let main_part = main_part_path(&wasm);
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&main_part)
        .web(true)?
        .out_name(OUTPUT_NAME)
        .typescript(false)
        // The chunks call the main part through these exports, by their mangled names.
        .keep_lld_exports(true)
        .demangle(false)
        .generate(&pkg)
        .with_context(|| format!("wasm-bindgen on {}", main_part.display()))?;
    // The server links `NAME.wasm` when LEPTOS_OUTPUT_NAME is set, as cargo-leptos names it.
    let shipped = pkg.join(format!("{OUTPUT_NAME}.wasm"));
    std::fs::rename(pkg.join(format!("{OUTPUT_NAME}_bg.wasm")), &shipped)
        .context("naming the WASM file")?;
    if release {
        let mut parts = chunks;
        parts.push(shipped);
        let optimise_started = Instant::now();
        optimise_all(root, &parts)?;
        eprintln!(
            "optimised {} parts with binaryen in {:.0} s",
            parts.len(),
            optimise_started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Where the split leaves the main part of `wasm`, for wasm-bindgen.
fn main_part_path(wasm: &Path) -> PathBuf {
    wasm.with_file_name("app_split.wasm")
}

/// The chunks' loader: the name leptos' HydrationScripts looks for when the site's files are
/// not hashed.
const LOADER: &str = "./__wasm_split.______________________.js";

/// Cuts the WASM at its `#[lazy]` functions (the `#[lazy_route]` pages) as
/// `cargo leptos --split` does: the chunks, the loader (`__wasm_split.*.js`) and the manifest
/// the server reads to preload a page's chunks go into `pkg`; returns the chunks' paths.
fn split(wasm: &Path, pkg: &Path) -> Result<Vec<PathBuf>> {
    let input = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let main_part = main_part_path(wasm);
    let main_module = format!("/pkg/{OUTPUT_NAME}.js");
    let mut options = wasm_split_cli_support::Options::new(&input);
    options.output_dir = pkg;
    options.main_out_path = &main_part;
    options.main_module = &main_module;
    options.link_name = LOADER;
    let split = wasm_split_cli_support::transform(options)
        .map_err(|error| anyhow::anyhow!("{error:?}"))
        .with_context(|| format!("splitting {}", wasm.display()))?;
    retry_chunk_fetches(&pkg.join(LOADER))?;
    let manifest = serde_json::to_string_pretty(&split.prefetch_map)?;
    std::fs::write(pkg.join("__wasm_split_manifest.json"), manifest)
        .context("writing the split manifest")?;
    Ok(split.split_modules)
}

/// A chunk the browser fails to fetch would leave its page dead, and a browser on the Docker
/// host drops requests in flight whenever a container starts or stops (Chromium's
/// ERR_NETWORK_CHANGED, for a second or two). The loader's fetches are made to try again, five
/// times more over about eight seconds, when no answer came (an answer, even a 404, is kept).
fn retry_chunk_fetches(loader: &Path) -> Result<()> {
    const FETCH: &str = "fetch(new URL(";
    const RETRYING: &str = "fetchChunk";
    const RETRYING_FETCH: &str = r#"
// Added by Slipway's build (xtask): a chunk whose fetch gets no answer is fetched again.
async function fetchChunk(url) {
    for (let attempt = 1; ; attempt++) {
        try {
            return await fetch(url);
        } catch (error) {
            if (attempt === 6) throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 125 * 2 ** attempt));
    }
}
"#;
    let script =
        std::fs::read_to_string(loader).with_context(|| format!("reading {}", loader.display()))?;
    let shape_changed = || {
        anyhow::anyhow!(
            "the wasm-split loader {} no longer has the shape this build patches (an import, then \
             `{FETCH}` for each chunk and no other fetch): check `retry_chunk_fetches` against it",
            loader.display()
        )
    };
    let (imports, rest) = script.split_once('\n').ok_or_else(shape_changed)?;
    if !imports.starts_with("import ") || !rest.contains(FETCH) || rest.contains(RETRYING) {
        return Err(shape_changed());
    }
    let patched = rest.replace(FETCH, &format!("{RETRYING}(new URL("));
    if patched.matches("fetch(").count() != 0 {
        return Err(shape_changed());
    }
    std::fs::write(loader, format!("{imports}\n{RETRYING_FETCH}{patched}"))
        .with_context(|| format!("writing {}", loader.display()))
}

/// binaryen (`xtask/optimise.mjs`, see there for the level) over every file, one node
/// process per core, each given an equal share of the bytes. binaryen is the npm package
/// `scripts/lib.sh` installs in `.tools/` (version 132: Debian's older one breaks hydration);
/// without it the build warns and ships the WASM as the split left it.
fn optimise_all(root: &Path, files: &[PathBuf]) -> Result<()> {
    let binaryen = root.join(".tools/node_modules/binaryen/index.js");
    if !binaryen.exists() {
        eprintln!(
            "warning: no binaryen in .tools/ (scripts/run installs it); the WASM is not size-optimised"
        );
        return Ok(());
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut workers: Vec<Child> = Vec::new();
    for share in shares(files, cores)? {
        let started = Command::new("node")
            .arg(root.join("xtask/optimise.mjs"))
            .arg(&binaryen)
            .args(share)
            .spawn()
            .context("starting node, which runs binaryen");
        match started {
            Ok(worker) => workers.push(worker),
            Err(error) => {
                // None is left writing into the site after the build has failed.
                for worker in &mut workers {
                    let _ = worker.kill();
                    let _ = worker.wait();
                }
                return Err(error);
            }
        }
    }
    // Every worker is waited for, even after one failed; the first failure is said.
    let finished: Vec<Result<()>> = workers
        .iter_mut()
        .map(|worker| wait(worker, "binaryen's optimisation of the WASM"))
        .collect();
    finished.into_iter().collect()
}

/// `files` dealt into `count` shares of about equal bytes: largest first, each to the share
/// with the fewest bytes so far.
fn shares(files: &[PathBuf], count: usize) -> Result<Vec<Vec<&PathBuf>>> {
    let mut sized = files
        .iter()
        .map(|file| {
            let size = std::fs::metadata(file)
                .with_context(|| format!("reading {}", file.display()))?
                .len();
            Ok((size, file))
        })
        .collect::<Result<Vec<_>>>()?;
    sized.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    let mut shares: Vec<(u64, Vec<&PathBuf>)> = vec![(0, Vec::new()); count.max(1)];
    for (size, file) in sized {
        let lightest = (0..shares.len())
            .min_by_key(|&share| shares[share].0)
            .unwrap_or_default();
        shares[lightest].0 += size;
        shares[lightest].1.push(file);
    }
    Ok(shares
        .into_iter()
        .map(|(_, files)| files)
        .filter(|files| !files.is_empty())
        .collect())
}

/// `NAME.br` (brotli, best quality) and `NAME.gz` (gzip -9) beside each file of the site's
/// pkg folder: the console sends them to browsers that accept them, compressed once here
/// rather than on every request. Release builds only: on loopback the debug WASM (~80 MB)
/// costs more to compress than to send.
fn precompress(pkg: &Path) -> Result<()> {
    // Listed before anything is written: a listing may or may not show files made during it.
    let mut files = Vec::new();
    for entry in std::fs::read_dir(pkg).with_context(|| format!("reading {}", pkg.display()))? {
        let path = entry?.path();
        let compressed = path
            .extension()
            .is_some_and(|extension| extension == "br" || extension == "gz");
        if path.is_file() && !compressed {
            files.push(path);
        }
    }
    // One thread per core, each with an equal share of the bytes.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let shares = shares(&files, cores)?;
    std::thread::scope(|scope| {
        let workers: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || share.into_iter().try_for_each(|path| compress(path))))
            .collect();
        workers.into_iter().try_for_each(|worker| {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a compression thread panicked"))?
        })
    })
}

/// `PATH.gz` and `PATH.br` beside `path`.
fn compress(path: &Path) -> Result<()> {
    let content = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&content)?;
    write_beside(path, "gz", &gzip.finish()?)?;
    let mut brotli = Vec::new();
    let best = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 24,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut content.as_slice(), &mut brotli, &best)
        .with_context(|| format!("compressing {}", path.display()))?;
    write_beside(path, "br", &brotli)
}

/// Writes `PATH.EXTENSION`.
fn write_beside(path: &Path, extension: &str, content: &[u8]) -> Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    std::fs::write(&name, content)
        .with_context(|| format!("writing {}", Path::new(&name).display()))
}

/// The style sheet as `pkg/NAME.css` and the public folder at the site's root.
fn copy_assets(root: &Path, site: &Path) -> Result<()> {
    let css = site.join("pkg").join(format!("{OUTPUT_NAME}.css"));
    std::fs::copy(root.join("style/main.css"), &css).context("copying style/main.css")?;
    copy_tree(&root.join("public"), site)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let destination = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &destination)?;
        } else {
            std::fs::copy(entry.path(), &destination)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

fn wait(child: &mut Child, what: impl AsRef<OsStr>) -> Result<()> {
    let status = child.wait()?;
    if !status.success() {
        bail!("{} failed ({status})", what.as_ref().to_string_lossy());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_chunk_loader_fetches_each_chunk_through_the_retrying_fetch() {
        let dir = std::env::temp_dir().join(format!("xtask-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let loader = dir.join("__wasm_split.js");
        // The shape wasm_split_cli_support 0.2.4 writes.
        std::fs::write(
            &loader,
            concat!(
                "import { initSync } from \"/pkg/slipway.js\";\n",
                "const __chunk_1 = makeLoad(() => {\n",
                "    const src = fetch(new URL(\"./chunk_1.wasm\", import.meta.url));\n",
                "}, []);\n",
                "const __chunk_2 = makeLoad(() => {\n",
                "    const src = fetch(new URL(\"./chunk_2.wasm\", import.meta.url));\n",
                "}, []);\n",
            ),
        )
        .unwrap();

        retry_chunk_fetches(&loader).unwrap();

        let patched = std::fs::read_to_string(&loader).unwrap();
        assert!(patched.starts_with("import { initSync } from \"/pkg/slipway.js\";\n"));
        assert_eq!(patched.matches("fetchChunk(new URL(").count(), 2);
        assert!(!patched.contains(" fetch(new URL("));
        assert!(patched.contains("async function fetchChunk(url)"));

        // A loader of another shape stops the build rather than ship it partly patched.
        for other_shape in [
            "export const nothing = 1;\n",
            "import { initSync } from \"/pkg/slipway.js\";\nconst a = fetch(new URL(\"./chunk_1.wasm\"));\nconst b = fetch(\"./chunk_2.wasm\");\n",
            "import { initSync } from \"/pkg/slipway.js\";\nasync function fetchChunk() {}\nfetch(new URL(\"./chunk_1.wasm\"));\n",
        ] {
            std::fs::write(&loader, other_shape).unwrap();
            let error = retry_chunk_fetches(&loader).unwrap_err().to_string();
            assert!(error.contains("no longer has the shape"), "{error}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_parts_are_dealt_to_the_cores_by_bytes_largest_first() {
        let dir = std::env::temp_dir().join(format!("xtask-shares-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files: Vec<PathBuf> = [
            ("main", 900),
            ("stack", 1000),
            ("a", 300),
            ("b", 200),
            ("c", 100),
        ]
        .iter()
        .map(|(name, size)| {
            let path = dir.join(name);
            std::fs::write(&path, vec![0u8; *size]).unwrap();
            path
        })
        .collect();
        let names = |share: &Vec<&PathBuf>| -> Vec<String> {
            share
                .iter()
                .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };

        let two = shares(&files, 2).unwrap();
        assert_eq!(
            two.iter().map(names).collect::<Vec<_>>(),
            [vec!["stack", "b", "c"], vec!["main", "a"]]
        );
        // More cores than files: no process without a file.
        assert_eq!(shares(&files[..1], 4).unwrap().len(), 1);
        // A part that is not there stops the build.
        assert!(shares(&[dir.join("gone")], 2).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn each_file_gets_a_brotli_and_a_gzip_copy_that_unpack_to_it_and_nothing_more() {
        let pkg = std::env::temp_dir().join(format!("xtask-precompress-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&pkg);
        std::fs::create_dir_all(&pkg).unwrap();
        let script = "function hydrate() { return 42; }\n".repeat(200);
        std::fs::write(pkg.join("slipway.js"), &script).unwrap();
        // A copy left by an earlier run is not compressed again.
        std::fs::write(pkg.join("old.js.gz"), b"not gzip").unwrap();

        precompress(&pkg).unwrap();

        let mut names: Vec<String> = std::fs::read_dir(&pkg)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["old.js.gz", "slipway.js", "slipway.js.br", "slipway.js.gz"]
        );
        let mut from_gzip = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(pkg.join("slipway.js.gz")).unwrap())
            .read_to_string(&mut from_gzip)
            .unwrap();
        assert_eq!(from_gzip, script);
        let mut from_brotli = String::new();
        brotli::Decompressor::new(
            std::fs::File::open(pkg.join("slipway.js.br")).unwrap(),
            4096,
        )
        .read_to_string(&mut from_brotli)
        .unwrap();
        assert_eq!(from_brotli, script);
        assert!(
            std::fs::metadata(pkg.join("slipway.js.br")).unwrap().len() < script.len() as u64 / 10
        );
        std::fs::remove_dir_all(&pkg).unwrap();
    }
}
