#!/usr/bin/env bash
# The `qr` benchmark (issue 19; `scripts/bench.sh qr` runs it): the QR pipeline
# against its render bound. Prints key=value lines on stdout, `# ...` progress
# on stderr.
#   1. render bound: PNGs rendered per second on the worker's render threads,
#      rendering only (qr_render_bound_per_s), and on one (qr_per_s_per_core);
#   2. gateway alone: wrk at full speed for BENCH_SECONDS (register_*), which
#      leaves a backlog of QR jobs (the worker is started, then paused);
#   3. drain: the worker resumed on that backlog alone: qr_drain_jobs_per_s,
#      its ratio to the render bound, the worker's CPU per job
#      (utime + stime from /proc/PID/stat) and PostgreSQL's;
#   4. mixed: wrk at full speed with the worker running (mixed_*), and how
#      long the QR files followed (mixed_qr_lag_*: created_at -> ready);
#   5. rate: BENCH_RATE registrations/s for BENCH_RATE_SECONDS, open loop
#      (qr-worker's bench `load`, latency from each request's due time), and
#      the QR lag (rate_qr_lag_*).
# The worker runs as a deployment should run it beside the request path
# (docs/benchmarks.md, "Issue 19"): QR_NICE (10), QR_RENDER_THREADS (1),
# QR_CONCURRENCY (32).
#   BENCH_SECONDS (10), BENCH_CONNECTIONS (32), BENCH_THREADS (2),
#   BENCH_RATE (2000), BENCH_RATE_SECONDS (60), BENCH_RENDER_SECONDS (5);
#   0 for BENCH_RATE_SECONDS skips phase 5; BENCH_BIN_DIR (below).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$root/scripts/lib.sh"
seconds="${BENCH_SECONDS:-10}"
connections="${BENCH_CONNECTIONS:-32}"
threads="${BENCH_THREADS:-2}"
rate="${BENCH_RATE:-2000}"
rate_seconds="${BENCH_RATE_SECONDS:-60}"
render_seconds="${BENCH_RENDER_SECONDS:-5}"
export QR_RENDER_THREADS="${QR_RENDER_THREADS:-1}" QR_CONCURRENCY="${QR_CONCURRENCY:-32}"
qr_nice="${QR_NICE:-10}"

ensure_rust
ensure_redis
ensure_postgres
command -v wrk >/dev/null 2>&1 || apt_install wrk
command -v psql >/dev/null 2>&1 || apt_install postgresql-client

echo "# building api-gateway, qr-worker, queuectl (release) and qr-worker's benches" >&2
if [ -z "${BENCH_BIN_DIR:-}" ]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p api-gateway -p qr-worker -p queuectl >&2
fi
cargo bench --no-run --quiet --manifest-path "$root/Cargo.toml" -p qr-worker --bench qr --bench load >&2
# BENCH_BIN_DIR: run the api-gateway, qr-worker and queuectl found there instead
# (an older build, to compare on the same machine in the same session).
bin="${BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$root/target}/release}"
bench() { cargo bench --quiet --manifest-path "$root/Cargo.toml" -p qr-worker --bench "$@"; }

bench_run_names qr
api_port=$(free_port); health_port=$(free_port); gateway_health_port=$(free_port)
pids=()
worker_pid=""
cleanup() {
  [ -n "$worker_pid" ] && kill -CONT "$worker_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$admin_db_url" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  "$bin/queuectl" --prefix "$prefix" purge qr --yes >/dev/null 2>&1 || true
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" | xargs -r redis-cli -u "$REDIS_URL" DEL >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# 1. The render bound, on a quiet machine.
echo "# render bound: ${render_seconds} s on 1 thread, then on $QR_RENDER_THREADS" >&2
bench qr -- "$render_seconds"

psql "$DATABASE_URL" -qc "CREATE DATABASE $db" >/dev/null
export RSQ_PREFIX="$prefix" STORAGE_DIR="$work/storage" DATABASE_URL="$db_url"
API_ADDR="127.0.0.1:$api_port" HEALTH_ADDR="127.0.0.1:$gateway_health_port" API_ADMIN_TOKEN="$admin_token" API_USER_TOKEN="$user_token" \
  "$bin/api-gateway" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_ready() { # PORT NAME LOG
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return
    sleep 0.1
  done
  cat "$3" >&2; die "$2 did not become ready"
}
wait_ready "$gateway_health_port" api-gateway "$work/gateway.log"
# The worker starts (migrations, connections) and is paused before the load.
HEALTH_ADDR="127.0.0.1:$health_port" nice -n "$qr_nice" "$bin/qr-worker" >"$work/qr-worker.log" 2>&1 &
worker_pid=$!
pids+=("$worker_pid")
wait_ready "$health_port" qr-worker "$work/qr-worker.log"
kill -STOP "$worker_pid"

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
  tid = tid or 0
end
function request()
  counter = counter + 1
  local body = string.format('{"document":"Q%s-%d-%d","first_name":"Bench","last_name":"Load"}', run, tid, counter)
  return wrk.format("POST", "/api/persons",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
LUA
to_ms() { # wrk prints 812.00us, 1.23ms, 1.02s
  awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.2f", n }'
}
load() { # NAME RUN: wrk for $seconds; prints NAME_req_per_s, NAME_latency_p50_ms, ...
  local name=$1 run=$2 f="$work/wrk-$1.txt" non2xx errors
  echo "# $name: wrk -t$threads -c$connections -d${seconds}s POST /api/persons" >&2
  wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" \
    "http://127.0.0.1:$api_port" -- "$run" "$user_token" >"$f"
  sed 's/^/# /' "$f" >&2
  echo "${name}_req_per_s=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$f")"
  echo "${name}_latency_p50_ms=$(to_ms "$(awk '$1 == "50%" {print $2}' "$f")")"
  echo "${name}_latency_p99_ms=$(to_ms "$(awk '$1 == "99%" {print $2}' "$f")")"
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$f"); errors=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$f")
  echo "${name}_non_2xx=${non2xx:-0}"
  echo "${name}_socket_errors=${errors:-0}"
}
pending() { psql "$db_url" -Atc "SELECT count(*) FROM persons WHERE qr_status = 'pending'"; }
wait_drained() { # at most 5 minutes
  for _ in $(seq 1 1200); do
    [ "$(pending)" = 0 ] && return
    sleep 0.25
  done
}
qr_lag() { # NAME DOCUMENT_PREFIX: p50/p99/max of created_at -> ready
  local p50 p99 max
  read -r p50 p99 max <<<"$(psql "$db_url" -AtF ' ' -c "
    SELECT round(1000 * percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)))::bigint,
           round(1000 * percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM updated_at - created_at)))::bigint,
           round(1000 * max(extract(epoch FROM updated_at - created_at)))::bigint
    FROM persons WHERE document LIKE '$2-%' AND qr_status = 'ready'")"
  echo "${1}_qr_lag_p50_ms=$p50"
  echo "${1}_qr_lag_p99_ms=$p99"
  echo "${1}_qr_lag_max_ms=$max"
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
postgres_ticks() { # every postgres process's utime + stime
  local total=0 p
  for p in $(pgrep -x postgres || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

echo "# warm-up 2 s" >&2
wrk -t"$threads" -c"$connections" -d2s -s "$work/post.lua" "http://127.0.0.1:$api_port" -- "w$run_id" "$user_token" >/dev/null
# 2. The gateway alone; the paused worker leaves the jobs waiting.
load register "a$run_id"

# 3. The worker drains the backlog alone.
backlog=$(pending)
echo "# resuming qr-worker on a backlog of $backlog QR jobs (nice $qr_nice, QR_RENDER_THREADS=$QR_RENDER_THREADS, QR_CONCURRENCY=$QR_CONCURRENCY)" >&2
# Alone, the worker runs at the default priority: the drain measures what it
# can do, not what the machine's other tenants leave it.
renice -n 0 -p "$worker_pid" >/dev/null
cpu0=$(ticks "$worker_pid"); pg0=$(postgres_ticks)
start=$(date +%s.%N)
kill -CONT "$worker_pid"
wait_drained
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}')
cpu1=$(ticks "$worker_pid"); pg1=$(postgres_ticks)
left=$(pending)
done_jobs=$((backlog - left))
echo "qr_backlog_jobs=$backlog"
echo "qr_backlog_left=$left"
echo "qr_drain_jobs_per_s=$(awk -v n="$done_jobs" -v t="$elapsed" 'BEGIN {printf "%d", n / t}')"
echo "qr_worker_cpu_ms_per_job=$(awk -v c=$((cpu1 - cpu0)) -v hz="$hz" -v n="$done_jobs" 'BEGIN {printf "%.3f", 1000 * c / hz / (n > 0 ? n : 1)}')"
echo "qr_postgres_cpu_ms_per_job=$(awk -v c=$((pg1 - pg0)) -v hz="$hz" -v n="$done_jobs" 'BEGIN {printf "%.3f", 1000 * c / hz / (n > 0 ? n : 1)}')"

# 4. Registrations at full speed with the worker running beside them, at the
#    priority a deployment gives it.
renice -n "$qr_nice" -p "$worker_pid" >/dev/null
cpu0=$(ticks "$worker_pid")
load mixed "b$run_id"
echo "mixed_worker_cpu_share=$(awk -v c=$(($(ticks "$worker_pid") - cpu0)) -v hz="$hz" -v t="$seconds" 'BEGIN {printf "%.2f", c / hz / t}')"
mixed_left=$(pending)
echo "mixed_qr_pending_at_end=$mixed_left"
wait_drained
qr_lag mixed "Qb$run_id"

# 5. A fixed rate, open loop.
if [ "$rate_seconds" != 0 ]; then
  echo "# rate: $rate registrations/s for $rate_seconds s (open loop)" >&2
  cpu0=$(ticks "$worker_pid")
  bench load -- "127.0.0.1:$api_port" "$user_token" "$rate" "$rate_seconds" "R$run_id"
  echo "rate_worker_cpu_share=$(awk -v c=$(($(ticks "$worker_pid") - cpu0)) -v hz="$hz" -v t="$rate_seconds" 'BEGIN {printf "%.2f", c / hz / t}')"
  wait_drained
  qr_lag rate "R$run_id"
fi
echo "qr_ready=$(psql "$db_url" -Atc "SELECT count(*) FROM persons WHERE qr_status = 'ready'")"
echo "qr_not_ready=$(psql "$db_url" -Atc "SELECT count(*) FROM persons WHERE qr_status <> 'ready'")"
echo "qr_files_written=$(find "$work/storage/qr" -name '*.png' 2>/dev/null | wc -l)"
