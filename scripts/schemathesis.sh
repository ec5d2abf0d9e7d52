#!/usr/bin/env bash
# Checks that the gateway keeps the promises of its OpenAPI document: starts a
# gateway (debug build) on a free port with a database and key prefix of its own,
# runs Schemathesis (PyPI, in a virtualenv) against /openapi.json with every check
# (admin token), requires 0 failures, and removes what it created, also on failure.
# The bank the payment routes call is upstream-sim on a free port of its own.
# Every request comes from one address and Schemathesis sends wrong keys on
# purpose (ignored_auth), so the slow-down of wrong keys is lifted
# (API_AUTH_MAX_FAILURES); the gateway's tests hold it to its 429.
# Rules the document cannot state are declared per operation in
# scripts/schemathesis.toml.
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   SCHEMATHESIS_SEED          fixed seed, to replay a run
#   API_GATEWAY_BIN            run this binary instead of building one
#   CARGO_TARGET_DIR           build output and the virtualenv (default ./target)
#   REDIS_URL, DATABASE_URL    as in test.sh; the database there is not touched
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# A version that exists on PyPI, pinned so a new release cannot fail the suite.
SCHEMATHESIS_VERSION=4.32.5
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
venv="$target/schemathesis-venv"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-100}"

ensure_redis
ensure_postgres
command -v psql >/dev/null 2>&1 || apt_install postgresql-client

ensure_schemathesis() {
  local installed=
  [ -x "$venv/bin/schemathesis" ] && installed="$("$venv/bin/pip" show schemathesis 2>/dev/null || true)"
  if grep -qx "Version: $SCHEMATHESIS_VERSION" <<<"$installed"; then
    return
  fi
  log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  ensure_python_venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
}
ensure_schemathesis

if [ -n "${API_GATEWAY_BIN:-}" ]; then
  gateway="$API_GATEWAY_BIN"
else
  ensure_rust
  log "building api-gateway and upstream-sim (debug)"
  cargo build --quiet -p api-gateway -p upstream-sim
  gateway="$target/debug/api-gateway"
fi
sim="${UPSTREAM_SIM_BIN:-$(dirname "$gateway")/upstream-sim}"
[ -x "$sim" ] || die "no upstream-sim binary at $sim (set UPSTREAM_SIM_BIN)"

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
run_id="$(random_hex 6)"
db="rsq_schemathesis_$run_id"
prefix="rsq-schemathesis-$run_id"
# DATABASE_URL with its database name replaced, keeping any ?query.
db_base="${DATABASE_URL%%\?*}"
db_query="${DATABASE_URL#"$db_base"}"
admin_db_url="${db_base%/*}/postgres$db_query"
run_db_url="${db_base%/*}/$db$db_query"
work="$(mktemp -d "${TMPDIR:-/tmp}/rsq-schemathesis.XXXXXX")"
gateway_pid=
sim_pid=

cleanup() {
  local rc=$?
  for pid in $gateway_pid $sim_pid; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  psql "$admin_db_url" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 \
    || printf 'warning: could not drop database %s\n' "$db" >&2
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" \
      | xargs -r -n 100 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$admin_db_url" -qc "CREATE DATABASE \"$db\"" >/dev/null
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
sim_port="$(free_port)"
admin_token="admin-$(random_hex 16)"
api="http://127.0.0.1:$port"

log "starting upstream-sim on 127.0.0.1:$sim_port (the bank)"
SIM_ADDR="127.0.0.1:$sim_port" RUST_LOG=warn "$sim" >"$work/upstream-sim.log" 2>&1 &
sim_pid=$!
wait_for_tcp 127.0.0.1 "$sim_port" upstream-sim

log "starting api-gateway on $api (database $db, prefix $prefix)"
API_ADDR="127.0.0.1:$port" \
  HEALTH_ADDR=127.0.0.1:0 \
  API_ADMIN_TOKEN="$admin_token" \
  API_USER_TOKEN="user-$(random_hex 16)" \
  API_AUTH_MAX_FAILURES=1000000 \
  DATABASE_URL="$run_db_url" \
  RSQ_PREFIX="$prefix" \
  STORAGE_DIR="$work/storage" \
  BANK_URL="http://127.0.0.1:$sim_port" \
  BANK_NOTIFY_SECRET="notify-$(random_hex 16)" \
  PHOTO_FETCH_ALLOWED_HOSTS=photos.example.com \
  RUST_LOG="${RUST_LOG:-warn}" \
  "$gateway" >"$work/api-gateway.log" 2>&1 &
gateway_pid=$!
for _ in $(seq 1 300); do
  tcp_open 127.0.0.1 "$port" && break
  kill -0 "$gateway_pid" 2>/dev/null || { cat "$work/api-gateway.log" >&2; die "api-gateway exited at start"; }
  sleep 0.1
done
tcp_open 127.0.0.1 "$port" || { cat "$work/api-gateway.log" >&2; die "api-gateway did not listen on $port"; }

seed_args=()
[ -n "${SCHEMATHESIS_SEED:-}" ] && seed_args=(--seed "$SCHEMATHESIS_SEED")
log "schemathesis $SCHEMATHESIS_VERSION: every check (but use_after_free), $max_examples examples per operation"
# Schemathesis keeps a cache of past failures (replayed first, and by `st replay`)
# in .schemathesis/ of its working directory: under the target dir, not the tree.
mkdir -p "$target/schemathesis"
status=0
config="$PWD/scripts/schemathesis.toml"
(cd "$target/schemathesis" && NO_COLOR=1 "$venv/bin/schemathesis" --config-file "$config" run "$api/openapi.json" \
  --checks all --exclude-checks use_after_free \
  --header "Authorization: Bearer $admin_token" \
  --max-examples "$max_examples" \
  --request-timeout 10 \
  "${seed_args[@]}") || status=$?
if [ "$status" -ne 0 ]; then
  log "api-gateway log (last 40 lines):"
  tail -n 40 "$work/api-gateway.log" >&2
  die "schemathesis: the gateway breaks its OpenAPI document (exit $status; replay from $target/schemathesis)"
fi
log "schemathesis: 0 failures"
