#!/usr/bin/env bash
# Drives the quick start as a user does when they stop it and start it again:
# scripts/run.sh --once is interrupted in the middle of its demo (first by
# Ctrl-C, then by kill -9 of every process it started) while the demo's Wispro
# sync is running, and a third run must complete the whole demo, following the
# sync run the interrupted ones left active. Uses its own Redis database, its
# own PostgreSQL database, its own ports and storage, so a stack on the default
# ports and its data are left alone; the data of the interrupted runs stay, as
# they would for a user. Called by scripts/test.sh; runs on its own too.
#   RUN_PROFILE  dev (default here: reuses the test build) or release
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_redis
ensure_ocr
ensure_postgres
command -v curl >/dev/null 2>&1 || apt_install curl
command -v psql >/dev/null 2>&1 || apt_install postgresql-client
command -v setsid >/dev/null 2>&1 || apt_install util-linux
command -v pgrep >/dev/null 2>&1 || apt_install procps
command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools

work=$(mktemp -d "${TMPDIR:-/tmp}/rsq-run-again.XXXXXX")
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Isolation: Redis database 7 and a database of its own, emptied first so the
# test starts from a known state (later runs then see the earlier ones' data).
redis_base="${REDIS_URL%/}"
case "${redis_base#*://}" in */*) redis_base="${redis_base%/*}" ;; esac
export REDIS_URL="$redis_base/7"
db_name=rsq_run_again
export DATABASE_URL="${DATABASE_URL%/*}/$db_name?sslmode=disable"
admin_url="${DATABASE_URL%/*}/postgres?sslmode=disable"
psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null
psql "$admin_url" -qc "CREATE DATABASE $db_name" >/dev/null
redis-cli -u "$REDIS_URL" FLUSHDB >/dev/null

export RUN_PROFILE="${RUN_PROFILE:-dev}"
export API_ADDR="127.0.0.1:$(free_port)"
export GATEWAY_HEALTH_ADDR="127.0.0.1:$(free_port)"
export QR_HEALTH_ADDR="127.0.0.1:$(free_port)"
export CONTEXT_HEALTH_ADDR="127.0.0.1:$(free_port)"
export SYNC_HEALTH_ADDR="127.0.0.1:$(free_port)"
export PAYMENT_HEALTH_ADDR="127.0.0.1:$(free_port)"
export PHOTO_HEALTH_ADDR="127.0.0.1:$(free_port)"
export SIM_ADDR="127.0.0.1:$(free_port)"
export STORAGE_DIR="$work/storage"
export API_ADMIN_TOKEN=admin-run-again-0123456789 API_USER_TOKEN=user-run-again-0123456789
# A sync long enough to be interrupted (10 pages, each answered after 300 ms),
# with cheap password hashes so the debug build keeps up.
export SIM_WISPRO_CLIENTS=1000 SIM_WISPRO_LATENCY=300ms SYNC_BCRYPT_COST=4

pid=
cleanup() {
  [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
  rm -rf "$work"
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" FLUSHDB >/dev/null 2>&1 || true
}
trap cleanup EXIT

active_run() {
  psql "$DATABASE_URL" -qAtc "SELECT id FROM sync_runs WHERE status IN ('queued', 'running') LIMIT 1" 2>/dev/null || true
}

# Starts run.sh --once in a process group of its own, waits until the demo's
# sync run is running with a page done, then stops the group with signal $1.
# After SIGINT the workers drain within their grace period, which may finish
# the sync; after SIGKILL the run must be left active (else nothing is tested).
interrupted_run() {
  local signal=$1 n=$2 log="$work/run-$2.log" run=
  setsid scripts/run.sh --once >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 3000); do
    run=$(psql "$DATABASE_URL" -qAtc "SELECT id FROM sync_runs WHERE status = 'running' AND pages_done >= 1 LIMIT 1" 2>/dev/null || true)
    [ -n "$run" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "run $n ended before its sync was running"; }
    sleep 0.2
  done
  [ -n "$run" ] || { cat "$log" >&2; die "run $n: the sync never got going"; }
  log "run $n: sync run $run is running; sending SIG$signal to every process run.sh started"
  kill -"$signal" -- "-$pid"
  for _ in $(seq 1 300); do
    pgrep -g "$pid" >/dev/null || break
    sleep 0.1
  done
  if pgrep -g "$pid" >/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || true
    die "run $n: processes still alive 30 s after SIG$signal"
  fi
  wait "$pid" 2>/dev/null || true
  pid=
  if [ "$signal" = KILL ] && [ -z "$(active_run)" ]; then
    die "run $n: the kill left no active sync run, so it tested nothing"
  fi
  log "run $n: stopped; active sync run: $(active_run || true)"
}

log "building run.sh's binaries ($RUN_PROFILE) before the clock starts"
cargo build --profile "$RUN_PROFILE" --quiet -p api-gateway -p qr-worker -p context-worker -p sync-worker -p payment-scheduler -p photo-worker -p upstream-sim -p queuectl

interrupted_run INT 1
interrupted_run KILL 2
stuck=$(active_run)
log "run 3: the demo must complete, following sync run $stuck"
setsid scripts/run.sh --once >"$work/run-3.log" 2>&1 &
pid=$!
if ! wait "$pid"; then
  pid=
  cat "$work/run-3.log" >&2
  die "run 3 did not complete its demo after two interrupted runs"
fi
pid=
grep -q "sync run $stuck is still active" "$work/run-3.log" || { cat "$work/run-3.log" >&2; die "run 3 did not follow the interrupted sync run $stuck"; }
status=$(psql "$DATABASE_URL" -qAtc "SELECT status FROM sync_runs WHERE id = $stuck")
[ "$status" = completed ] || die "sync run $stuck is $status, expected completed"
grep '^==> ' "$work/run-3.log" | grep -E 'sync run|qr_status|context_status|payment|photo batch' >&2
log "run.sh again after Ctrl-C and after kill -9: the demo completed"
