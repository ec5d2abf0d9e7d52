#!/usr/bin/env bash
# Regenerates the offline data of sqlx's checked queries (`.sqlx/`, one
# `query-<hash>.json` per query) without sqlx-cli: on a throwaway database with
# the migrations applied, the crates that use `sqlx::query!` and its kin are
# checked online, and sqlx-macros writes the data of every query it expands
# into SQLX_OFFLINE_DIR.
#   scripts/sqlx-prepare.sh          replace .sqlx/ with the fresh data
#   scripts/sqlx-prepare.sh --check  compare instead; exit 1 naming the stale,
#                                    missing and extra files (CI runs this)
#   DATABASE_URL  the server to use (default: scripts/lib.sh's); its database
#                 is left alone, a fresh one is created beside it and dropped
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

check=
case "${1:-}" in
  --check) check=1 ;;
  "") ;;
  *) die "usage: $0 [--check]" ;;
esac

ensure_rust
command -v psql >/dev/null 2>&1 || apt_install postgresql-client

# The crates whose sources hold checked queries.
mapfile -t packages < <(grep -rlE 'sqlx::query(_as|_scalar)?(_unchecked)?!' crates/*/src \
  | cut -d/ -f2 | sort -u)
((${#packages[@]})) || die "no crate uses sqlx's query macros"

# A database of our own on the same server: postgres://.../<db>?opts -> .../<ours>?opts
db="sqlx_prepare_$$_${RANDOM}"
base="${DATABASE_URL%%\?*}"
query=""
[[ "$DATABASE_URL" == *\?* ]] && query="?${DATABASE_URL#*\?}"
admin_url="${base%/*}/postgres${query}"
prepare_url="${base%/*}/${db}${query}"
out=$(mktemp -d)
cleanup() {
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT

log "creating database $db"
psql "$admin_url" -qc "CREATE DATABASE \"$db\"" >/dev/null
# What store::migrate applies, in its order, each file in one transaction as
# sqlx runs it (only sqlx's own bookkeeping table is missing, which no query reads).
for migration in crates/store/migrations/*.sql; do
  psql "$prepare_url" -q -v ON_ERROR_STOP=1 --single-transaction -f "$migration" >/dev/null
done

# A target directory of its own keeps the main one's offline build. A crate
# with checked queries declares SQLX_OFFLINE_DIR in its build script
# (crates/store/build.rs), so the new directory makes its macros expand again.
target_dir=target/sqlx-prepare
package_args=()
for p in "${packages[@]}"; do
  grep -q 'rerun-if-env-changed=SQLX_OFFLINE_DIR' "crates/$p/build.rs" 2>/dev/null \
    || die "crates/$p uses sqlx's query macros: give it crates/store/build.rs's lines"
  package_args+=(-p "$p")
done
log "checking ${packages[*]} against $db"
DATABASE_URL="$prepare_url" SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$out" \
  cargo check --quiet --target-dir "$target_dir" --lib --bins "${package_args[@]}"

fresh=$(find "$out" -name 'query-*.json' | wc -l)
((fresh)) || die "no query data was written: did the macros expand?"

if [[ -z "$check" ]]; then
  rm -rf .sqlx
  mkdir .sqlx
  cp "$out"/query-*.json .sqlx/
  log ".sqlx: $fresh queries; commit it"
  exit 0
fi

status=0
for f in "$out"/query-*.json; do
  name=$(basename "$f")
  if [[ ! -e ".sqlx/$name" ]]; then
    echo "missing: .sqlx/$name (a query without committed data)" >&2; status=1
  elif ! cmp -s "$f" ".sqlx/$name"; then
    echo "stale: .sqlx/$name" >&2; status=1
  fi
done
for f in .sqlx/query-*.json; do
  [[ -e "$f" ]] || continue
  name=$(basename "$f")
  if [[ ! -e "$out/$name" ]]; then
    echo "extra: $f (no query has it any more)" >&2; status=1
  fi
done
if ((status)); then
  echo "error: .sqlx is out of date: run scripts/sqlx-prepare.sh and commit .sqlx" >&2
  exit 1
fi
log ".sqlx is up to date ($fresh queries)"
