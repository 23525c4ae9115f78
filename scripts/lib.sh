# Shared by scripts/run and scripts/test: install what the build needs, once.
# Every step checks before it installs, so a second run costs seconds.

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

# The WASM target. The build itself is `cargo xtask build` (xtask/): wasm-bindgen runs as a
# library inside the workspace, so neither cargo-leptos nor wasm-bindgen-cli is installed.
ensure_build_tools() {
  command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup first" >&2; exit 1; }
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
}

# binaryen, which release builds optimise the WASM with (xtask/optimise.mjs), from the npm
# registry into .tools/ (Debian's binaryen is older and breaks hydration).
ensure_binaryen() {
  local tools="$PWD/.tools"
  command -v npm >/dev/null || ensure_apt nodejs npm
  if ! grep -qs "\"version\": \"$BINARYEN_VERSION\"" "$tools/node_modules/binaryen/package.json"; then
    say "installing binaryen $BINARYEN_VERSION from npm"
    mkdir -p "$tools"
    npm install --prefix "$tools" --no-save --no-audit --no-fund "binaryen@$BINARYEN_VERSION" >/dev/null
  fi
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

# A TCP port free on 127.0.0.1 right now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# A fresh PostgreSQL cluster on a free loopback port, for this script only: sets PG_URL (the
# `postgres` database as user slipway); `stop_throwaway_postgres` stops and removes it.
start_throwaway_postgres() {
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  PG_DIR=$(mktemp -d /tmp/slipway-pg.XXXXXX)
  local port
  port=$(free_port)
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PG_DIR"
  say "starting PostgreSQL on 127.0.0.1:$port"
  as_postgres "$PG_BIN/initdb" -D "$PG_DIR/data" -U slipway --auth=trust -E UTF8 >/dev/null
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w \
    -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  PG_URL="postgres://slipway@127.0.0.1:$port/postgres"
}
stop_throwaway_postgres() {
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
