#!/usr/bin/env bash
# The `gateway` benchmark (run through `scripts/bench.sh gateway`): POST /api/persons
# throughput and latency under load from a separate process (wrk), how long the
# QR files take to follow, and qr_per_s_per_core for the worker. Prints key=value.
#   BENCH_SECONDS (10), BENCH_CONNECTIONS (32), BENCH_THREADS (2)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/lib.sh"
seconds="${BENCH_SECONDS:-10}"
connections="${BENCH_CONNECTIONS:-32}"
threads="${BENCH_THREADS:-2}"

ensure_rust
ensure_redis
ensure_postgres
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v psql >/dev/null 2>&1 || apt_install postgresql-client

echo "# building api-gateway, qr-worker, queuectl (release) and qr-worker's bench qr" >&2
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p api-gateway -p qr-worker -p queuectl >&2
cargo bench --no-run --quiet --manifest-path "$root/Cargo.toml" -p qr-worker --bench qr >&2
bin="${CARGO_TARGET_DIR:-$root/target}/release"

bench_run_names gw
api_port=$(free_port); health_port=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Through the original URL: DATABASE_URL points at the bench database by now.
  psql "$admin_db_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  "$bin/queuectl" --prefix "$prefix" purge qr --yes >/dev/null 2>&1 || true
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

psql "$DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
export RSQ_PREFIX="$prefix" STORAGE_DIR="$work/storage" DATABASE_URL="$db_url"
gateway_health_port=$(free_port)
API_ADDR="127.0.0.1:$api_port" HEALTH_ADDR="127.0.0.1:$gateway_health_port" API_ADMIN_TOKEN="$admin_token" API_USER_TOKEN="$user_token" \
  "$bin/api-gateway" >"$work/gateway.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$gateway_health_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$gateway_health_port/readyz" >/dev/null || { cat "$work/gateway.log" >&2; die "api-gateway did not become ready"; }

cat >"$work/post.lua" <<'LUA'
-- Each request registers a new person: a unique document per thread and request.
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  run = args[1]
  token = args[2]
  pause_ms = tonumber(args[3] or "0")
  tid = tid or 0
end
-- With a third argument, each connection waits that many ms between requests:
-- a steady rate of about connections * 1000 / ms.
function delay()
  return pause_ms
end
function request()
  counter = counter + 1
  local body = string.format('{"document":"B%s-%d-%d","first_name":"Bench","last_name":"Load"}', run, tid, counter)
  return wrk.format("POST", "/api/persons",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
LUA

to_ms() { # wrk prints 812.00us, 1.23ms, 1.02s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
# load NAME RUN: wrk for $seconds; prints NAME_req_per_s, NAME_latency_p50_ms, ...
load() {
  local name=$1 run=$2
  echo "# $name: wrk -t$threads -c$connections -d${seconds}s POST /api/persons" >&2
  wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" \
    "http://127.0.0.1:$api_port" -- "$run" "$user_token" >"$work/wrk-$name.txt"
  sed 's/^/# /' "$work/wrk-$name.txt" >&2
  local f="$work/wrk-$name.txt" non2xx errors
  echo "${name}_req_per_s=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$f")"
  echo "${name}_latency_p50_ms=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")"
  echo "${name}_latency_p99_ms=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")"
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$f"); errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f")
  echo "${name}_non_2xx=${non2xx:-0}"
  echo "${name}_socket_errors=${errors:-0}"
}
pending() { psql "$db_url" -Atc "SELECT count(*) FROM persons WHERE qr_status = 'pending'"; }
wait_drained() {
  for _ in $(seq 1 1200); do
    [ "$(pending)" = 0 ] && return
    sleep 0.25
  done
}
# qr_lag NAME DOCUMENT_PREFIX: p50/p99 of created_at -> ready for those persons.
qr_lag() {
  local p50 p99
  read -r p50 p99 <<<"$(psql "$db_url" -AtF ' ' -c "
    SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)))::bigint,
           round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)))::bigint
    FROM persons WHERE document LIKE '$2-%' AND qr_status = 'ready'")"
  echo "${1}_qr_lag_p50_ms=$p50"
  echo "${1}_qr_lag_p99_ms=$p99"
}

echo "# warm-up 2 s" >&2
wrk -t"$threads" -c"$connections" -d2s -s "$work/post.lua" "http://127.0.0.1:$api_port" -- "w$run_id" "$user_token" >/dev/null
# 1. The gateway alone: registrations/s the front can take (jobs pile up).
load register "a$run_id"

# 2. The worker drains that backlog: QR jobs end to end (DB read, render, file, DB update).
backlog=$(pending)
echo "# starting qr-worker on a backlog of $backlog QR jobs" >&2
start=$(date +%s.%N)
HEALTH_ADDR="127.0.0.1:$health_port" "$bin/qr-worker" >"$work/qr-worker.log" 2>&1 &
pids+=($!)
wait_drained
left=$(pending)
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
echo "qr_backlog_jobs=$backlog"
echo "qr_backlog_left=$left"
echo "qr_drain_jobs_per_s=$(awk -v n="$backlog" -v l="$left" -v t="$elapsed" 'BEGIN {printf "%d", (n - l) / t}')"

# 3. Both at once: registrations/s with the worker rendering beside it, and how
#    long each QR took to follow its registration (created_at -> ready).
load mixed "b$run_id"
wait_drained
qr_lag mixed "Bb$run_id"

# 4. A steady rate the worker keeps up with (BENCH_STEADY_CONNECTIONS x 1000 /
#    BENCH_STEADY_PAUSE_MS requests/s): how soon each QR follows its registration.
steady_conns="${BENCH_STEADY_CONNECTIONS:-10}"
steady_pause="${BENCH_STEADY_PAUSE_MS:-20}"
echo "# steady: wrk -t2 -c$steady_conns, ${steady_pause} ms between requests per connection" >&2
wrk -t2 -c"$steady_conns" -d"${seconds}s" --latency -s "$work/post.lua" \
  "http://127.0.0.1:$api_port" -- "c$run_id" "$user_token" "$steady_pause" >"$work/wrk-steady.txt"
sed 's/^/# /' "$work/wrk-steady.txt" >&2
echo "steady_req_per_s=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$work/wrk-steady.txt")"
wait_drained
qr_lag steady "Bc$run_id"
echo "persons_registered=$(psql "$db_url" -Atc "SELECT count(*) FROM persons")"
echo "qr_ready=$(psql "$db_url" -Atc "SELECT count(*) FROM persons WHERE qr_status = 'ready'")"
echo "qr_files_written=$(find "$work/storage/qr" -name '*.png' 2>/dev/null | wc -l)"
cargo bench --quiet --manifest-path "$root/Cargo.toml" -p qr-worker --bench qr
