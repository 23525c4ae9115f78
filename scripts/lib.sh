# Shared by scripts/run and scripts/test: install what the build needs, once.
# Every step checks before it installs, so a second run costs seconds.

CARGO_LEPTOS_VERSION=0.3.10
# wasm-bindgen-cli must match the wasm-bindgen version in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
BINARYEN_VERSION=132.0.0

export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\n==> %s\n' "$*"; }

# Installs Debian packages that are missing; `apt-get update` only when something is.
ensure_apt() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The WASM target, cargo-leptos and the matching wasm-bindgen, all from the registries.
ensure_build_tools() {
  command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup first" >&2; exit 1; }
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "$CARGO_LEPTOS_VERSION" ]; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 16 minutes, once)"
    cargo install cargo-leptos@"$CARGO_LEPTOS_VERSION" --locked
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
    say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
    # Without --locked: the registry lacks one of the versions its lock file pins.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
  fi
}

# wasm-opt for release builds, from the npm registry (Debian's binaryen breaks hydration).
ensure_wasm_opt() {
  local tools="$PWD/.tools"
  if [ "$("$tools/node_modules/.bin/wasm-opt" --version 2>/dev/null | awk '{print $3}')" != "${BINARYEN_VERSION%%.*}" ]; then
    say "installing wasm-opt (binaryen $BINARYEN_VERSION from npm)"
    mkdir -p "$tools"
    npm install --prefix "$tools" --no-save --no-audit --no-fund "binaryen@$BINARYEN_VERSION" >/dev/null
  fi
  export PATH="$tools/node_modules/.bin:$PATH"
}

# The browser tests' npm packages, exactly as locked.
ensure_end2end_modules() {
  if [ ! -d end2end/node_modules/playwright-core ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    say "installing the browser tests' npm packages"
    (cd end2end && npm ci --no-audit --no-fund >/dev/null)
  fi
}

# A Docker engine answering on the local socket: Debian's dockerd, started in the background
# when none answers. Sets STARTED_DOCKERD to its pid when this script started it.
DOCKER=/usr/bin/docker
ensure_docker_engine() {
  if "$DOCKER" info >/dev/null 2>&1; then return 0; fi
  say "starting the Docker engine (dockerd)"
  mkdir -p target
  dockerd >target/dockerd.log 2>&1 &
  STARTED_DOCKERD=$!
  for _ in $(seq 60); do
    "$DOCKER" info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "dockerd did not answer within 60 s; see target/dockerd.log" >&2
  return 1
}
