# Shared helpers of run.sh, test.sh and bench.sh: find or start the services the
# project needs, installing Debian packages when they are missing.
# shellcheck shell=bash

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
# TLS to a local server only costs CPU (about a third of an INSERT, measured).
DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable}"
export REDIS_URL DATABASE_URL

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root (directly, or through sudo when available).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (install it yourself, or run as root)"
  fi
}

APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "cannot install $* here: no apt-get; install it and retry"
  if [ -z "$APT_UPDATED" ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# host and port of a redis:// or postgres:// URL
url_host() { local u="${1#*://}"; u="${u#*@}"; u="${u%%/*}"; echo "${u%%:*}"; }
url_port() { local u="${1#*://}"; u="${u#*@}"; u="${u%%/*}"; case "$u" in *:*) echo "${u##*:}";; *) echo "$2";; esac; }

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# A loopback port nothing listens on (bash alone: the bench scripts need no python).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    tcp_open 127.0.0.1 "$p" || { echo "$p"; return; }
  done
  die "no free port"
}

# A benchmark run's own names, so runs never share state: run_id, a database
# (db, db_url beside admin_db_url = $DATABASE_URL), a Redis key prefix, a work
# directory and fresh operator and user tokens. $1 names the benchmark.
bench_run_names() {
  admin_db_url="$DATABASE_URL"
  run_id="$(date +%s)$$"
  db="bench_${1}_$run_id"
  prefix="bench-${1}-$run_id"
  work="$(mktemp -d)"
  local db_query=""
  case "$DATABASE_URL" in *\?*) db_query="?${DATABASE_URL#*\?}" ;; esac
  db_url="${DATABASE_URL%/*}/$db$db_query"
  admin_token="admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  user_token="user-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
}

wait_for_tcp() {
  local host=$1 port=$2 what=$3 i
  for i in $(seq 1 100); do
    tcp_open "$host" "$port" && return 0
    sleep 0.1
  done
  die "$what did not start listening on $host:$port"
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs), stable >= 1.88"
  # protoc is vendored by the build (protoc-bin-vendored); a C compiler is needed by ring.
  command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev
}

ensure_redis() {
  local host port
  host=$(url_host "$REDIS_URL"); port=$(url_port "$REDIS_URL" 6379)
  if tcp_open "$host" "$port"; then
    log "redis is up at $host:$port"
    return
  fi
  case "$host" in 127.*|localhost) ;; *) die "redis at $host:$port is not reachable (REDIS_URL=$REDIS_URL)";; esac
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  log "starting redis-server on port $port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
    --logfile "${TMPDIR:-/tmp}/rsq-redis-$port.log"
  wait_for_tcp "$host" "$port" redis
}

# The tests start private servers of their own (restarts, AOF, a three-master
# cluster): they need redis-server and redis-cli even when a Redis already runs.
ensure_redis_binaries() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server redis-tools
  fi
  # The TLS test makes its CA and server certificate with openssl.
  command -v openssl >/dev/null 2>&1 || apt_install openssl
}

# Tesseract OCR for the photo pipeline (bib-detect): the library and headers the
# binding builds against, English data, clang for its bindgen, and the fonts the
# bib test-photo generator draws with.
ensure_ocr() {
  local missing=()
  dpkg -s libtesseract-dev >/dev/null 2>&1 || missing+=(libtesseract-dev)
  dpkg -s libleptonica-dev >/dev/null 2>&1 || missing+=(libleptonica-dev)
  dpkg -s tesseract-ocr-eng >/dev/null 2>&1 || missing+=(tesseract-ocr-eng)
  dpkg -s clang >/dev/null 2>&1 || missing+=(clang)
  dpkg -s pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
  dpkg -s fonts-liberation2 >/dev/null 2>&1 || missing+=(fonts-liberation2)
  dpkg -s fonts-freefont-ttf >/dev/null 2>&1 || missing+=(fonts-freefont-ttf)
  # The generator's held-out fonts (Roboto, Open Sans, Lato, Cantarell) and more tuning
  # ones (Croscore): a detector measured on the fonts it was tuned on proves little.
  dpkg -s fonts-croscore >/dev/null 2>&1 || missing+=(fonts-croscore)
  dpkg -s fonts-roboto >/dev/null 2>&1 || missing+=(fonts-roboto)
  dpkg -s fonts-open-sans >/dev/null 2>&1 || missing+=(fonts-open-sans)
  dpkg -s fonts-lato >/dev/null 2>&1 || missing+=(fonts-lato)
  dpkg -s fonts-cantarell >/dev/null 2>&1 || missing+=(fonts-cantarell)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
}

ensure_postgres() {
  local host port
  host=$(url_host "$DATABASE_URL"); port=$(url_port "$DATABASE_URL" 5432)
  if tcp_open "$host" "$port"; then
    log "postgresql is up at $host:$port"
    ensure_database
    return
  fi
  case "$host" in 127.*|localhost) ;; *) die "postgresql at $host:$port is not reachable (DATABASE_URL=$DATABASE_URL)";; esac
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting postgresql $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for_tcp "$host" "$port" postgresql
  # A fresh cluster authenticates TCP clients by password: give the postgres role
  # the one in DATABASE_URL and create the database. Harmless under trust auth.
  local password db
  password=$(echo "$DATABASE_URL" | sed -n 's|^[a-z]*://[^:/@]*:\([^@]*\)@.*|\1|p')
  db=$(echo "$DATABASE_URL" | sed -n 's|.*/\([^/?]*\)\(?.*\)\{0,1\}$|\1|p')
  if [ -n "$password" ]; then
    as_root su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD '$password'\"" >/dev/null
  fi
  if [ -n "$db" ] && [ "$db" != postgres ]; then
    as_root su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname = '$db'\" | grep -q 1 || createdb '$db'"
  fi
}

# Creates the database named in DATABASE_URL when the server is up but lacks it.
ensure_database() {
  command -v psql >/dev/null 2>&1 || return 0
  psql "$DATABASE_URL" -qAtc 'SELECT 1' >/dev/null 2>&1 && return 0
  local db admin
  db=$(echo "$DATABASE_URL" | sed -n 's|.*/\([^/?]*\)\(?.*\)\{0,1\}$|\1|p')
  admin="${DATABASE_URL%/*}/postgres"
  if [ -n "$db" ] && psql "$admin" -qAtc 'SELECT 1' >/dev/null 2>&1; then
    log "creating database $db"
    psql "$admin" -qc "CREATE DATABASE \"$db\"" >/dev/null
  fi
}

# Creates a fresh Python virtualenv at $1 (installing python3 and, on Debian, the
# python3-venv package that `python3 -m venv` needs for pip, when missing).
ensure_python_venv() {
  local dir=$1
  command -v python3 >/dev/null 2>&1 || apt_install python3
  rm -rf "$dir"
  if ! python3 -m venv "$dir" >/dev/null 2>&1; then
    rm -rf "$dir"
    apt_install python3-venv
    python3 -m venv "$dir"
  fi
}

# ---------------------------------------------------------------------------
# Containers (scripts/test-compose.sh): podman in place of a Docker engine, base
# images made with debootstrap in place of a registry.

# Podman, runc and debootstrap from Debian; podman then reads the project's
# containers.conf (runc, limits a small machine allows) unless CONTAINERS_CONF
# names another.
ensure_podman() {
  local missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/deploy/podman/containers.conf}"
}

# A minimal Debian bookworm image made with debootstrap (no registry needed),
# kept in podman's storage between runs, also tagged with each name in "$@".
RSQ_DEBOOTSTRAP_IMAGE=localhost/rsq-debootstrap:bookworm
ensure_debootstrap_image() {
  if ! podman image exists "$RSQ_DEBOOTSTRAP_IMAGE"; then
    local root
    root=$(mktemp -d)
    log "debootstrap --variant=minbase bookworm (about a minute)"
    if ! as_root debootstrap --variant=minbase bookworm "$root/fs" http://deb.debian.org/debian >"$root/log" 2>&1; then
      tail -n 20 "$root/log" >&2
      as_root rm -rf "$root"
      die "debootstrap failed (log above)"
    fi
    as_root tar -C "$root/fs" -c . | podman import - "$RSQ_DEBOOTSTRAP_IMAGE" >/dev/null
    as_root rm -rf "$root"
  fi
  local tag
  for tag in "$@"; do podman tag "$RSQ_DEBOOTSTRAP_IMAGE" "$tag"; done
}

# docker-compose 1.29 (PyPI) in a virtualenv at $1, kept between runs. It talks
# to `podman system service` and, unlike Debian's podman-compose 1.0.3, fails
# when a container fails, honours --scale and waits for depends_on conditions.
# PyYAML 5.4 (its pin) builds only with Cython < 3; docker 7, requests 2.32 and
# urllib3 2 broke its client.
ensure_docker_compose() {
  local dir=$1
  "$dir/bin/docker-compose" version >/dev/null 2>&1 && return 0
  log "installing docker-compose 1.29 into $dir"
  ensure_python_venv "$dir"
  "$dir/bin/pip" install -q "cython<3" wheel setuptools
  "$dir/bin/pip" install -q --no-build-isolation "pyyaml==5.4.1"
  "$dir/bin/pip" install -q "docker-compose==1.29.2" "docker<7" "requests<2.32" "urllib3<2"
}

# Debian's headless Chromium and its WebDriver, for the dashboard's browser
# tests (crates/api-gateway/tests/it/browser.rs).
ensure_chromium() {
  command -v chromedriver >/dev/null 2>&1 && [ -x /usr/lib/chromium/chromium ] && return 0
  apt_install chromium chromium-driver
}
