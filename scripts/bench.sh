#!/usr/bin/env bash
# Benchmarks that print figures, one `key=value` line each (stdout); progress and
# breakdowns go to stderr as `# ...` lines.
#
#   scripts/bench.sh queue-core [suite options]   e.g. --only drain,latency --jobs 50000
#
# Every benchmark is a `benches/NAME.rs` target (`harness = false`) of the crate
# it measures, run by `cargo bench -p CRATE --bench NAME`.
#
# Uses REDIS_URL when set; otherwise starts a private redis-server on a free
# loopback port (no persistence) and stops it on exit.
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: scripts/bench.sh TARGET [options]

targets:
  queue-core   Redis Streams engine: enqueue, drain (c100, c1000), end to end,
               latency at a steady rate, worker memory and CPU, crash recovery,
               the floor (a bare XREADGROUP COUNT 100 + XACK loop) and BullMQ's
               drain (node, crates/queue-bench/bullmq, pinned in its
               package-lock.json, installed there by `npm ci` when missing) on
               the same Redis, with the ratios ours/floor and ours/BullMQ.
               Options go to the suite, `cargo bench -p queue-bench --bench
               queue_core -- [options]` (see `--help`).
  sync         a 10,000-customer Wispro sync against the simulator: customers/s
               creating (bcrypt cost 10) and updating, beside this machine's
               bcrypt bound (SYNC_BENCH_CLIENTS, SYNC_BCRYPT_COST).
  photos       the photo worker at concurrency 3 on labelled photos: photos/s,
               ms per photo for decode, thumbnail, candidate search and OCR,
               precision and recall of the bibs (PHOTO_BENCH_DIR, e.g.
               crates/bib-detect/testdata; else PHOTO_BENCH_PHOTOS generated
               photos, default 30; PHOTOS_CONCURRENCY).
  payments     50,000 payment QRs tracked in the bank simulator, each checked
               twice by the payment-scheduler: checks_per_s, lateness_p50_ms,
               lateness_p99_ms against the checks' due times (BENCH_PAYMENTS,
               BENCH_SPREAD, BENCH_DELAY, BENCH_CONCURRENCY, BENCH_REPLICAS);
               then paid -> confirmed, p50/p95/max, with the bank's
               notification and by polling alone (BENCH_CONFIRM_PAYMENTS,
               BENCH_POLL_DELAY; 0 payments skips a part).
  gateway      POST /api/persons under load from wrk (req/s, p50, p99), how
               long the QR files take to follow, qr_per_s_per_core
               (scripts/bench-gateway.sh; BENCH_SECONDS, BENCH_CONNECTIONS).
  qr           the QR pipeline against its render bound (scripts/bench-qr.sh):
               the render bound, the worker's drain of a backlog and its CPU
               per job, registrations at full speed beside the worker, and a
               fixed rate (BENCH_RATE, BENCH_RATE_SECONDS) with the QR files'
               lag. The render alone, one thread: `cargo bench -p qr-worker
               --bench qr [-- SECONDS]`.
  bib-detect   the bib detector alone on its committed photo set, one photo at a
               time: ms per stage, precision and recall.

REDIS_URL    use this Redis instead of starting one (its keys are left alone:
             the suite works under a fresh key prefix and deletes it)
EOF
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
given_redis_url="${REDIS_URL:-}"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
target="${1:-}"
case "$target" in
    queue-core) shift ;;
    gateway) shift; exec "$root/scripts/bench-gateway.sh" "$@" ;;
    sync)
        shift
        ensure_rust; ensure_redis; ensure_postgres
        exec cargo bench --quiet -p sync-worker --bench sync --manifest-path "$root/Cargo.toml" ;;
    photos)
        shift
        ensure_rust; ensure_ocr; ensure_redis; ensure_postgres
        exec cargo bench --quiet -p photo-worker --bench photos --manifest-path "$root/Cargo.toml" ;;
    payments)
        shift
        ensure_rust; ensure_redis; ensure_postgres
        exec cargo bench --quiet -p payment-scheduler --bench checks --manifest-path "$root/Cargo.toml" ;;
    qr) shift; exec "$root/scripts/bench-qr.sh" "$@" ;;
    bib-detect)
        shift
        ensure_rust; ensure_ocr
        exec cargo bench --quiet -p bib-detect --bench photos --manifest-path "$root/Cargo.toml" ;;
    -h | --help | help) usage; exit 0 ;;
    "") usage; exit 64 ;;
    *) echo "bench.sh: unknown target '$target'" >&2; usage; exit 64 ;;
esac

redis_pid=""
cleanup() {
    if [[ -n "$redis_pid" ]]; then
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

ensure_rust
if [[ -z "$given_redis_url" ]]; then
    command -v redis-server >/dev/null || apt_install redis-server
    port=""
    for _ in $(seq 1 50); do
        candidate=$((20000 + RANDOM % 30000))
        if ! tcp_open 127.0.0.1 "$candidate"; then port="$candidate"; break; fi
    done
    [[ -n "$port" ]] || { echo "bench.sh: no free port found" >&2; exit 69; }
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --loglevel warning >/dev/null &
    redis_pid=$!
    for _ in $(seq 1 100); do
        tcp_open 127.0.0.1 "$port" && break
        kill -0 "$redis_pid" 2>/dev/null || { echo "bench.sh: redis-server failed to start" >&2; exit 69; }
        sleep 0.05
    done
    export REDIS_URL="redis://127.0.0.1:$port"
    echo "# started redis-server on port $port (pid $redis_pid)" >&2
else
    export REDIS_URL="$given_redis_url"
fi

bullmq_dir="$root/crates/queue-bench/bullmq"
if [[ ! -d "$bullmq_dir/node_modules/bullmq" ]]; then
    command -v npm >/dev/null || apt_install nodejs npm
    if command -v npm >/dev/null; then
        echo "# installing BullMQ for the comparison (npm ci in $bullmq_dir)" >&2
        npm ci --prefix "$bullmq_dir" --no-audit --no-fund --loglevel=error >&2
    else
        echo "# warning: npm not found: the suite skips BullMQ's drain" >&2
    fi
fi

echo "# building queue-bench and its bench queue_core (release)" >&2
cargo bench --no-run --quiet -p queue-bench --bench queue_core --manifest-path "$root/Cargo.toml" >&2
echo "# machine: $(nproc) cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1)" >&2
# Producer, workers and Redis share the cores: anything else running skews the
# figures (the suite also notes, per stage, how much CPU other processes took).
busy_pct() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
    sleep 1
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " ");
        busy = y[1] - x[1]; idle = y[2] - x[2]; print int(100 * busy / (busy + idle + 1e-9)) }'
}
busy=$(busy_pct)
if (( busy > 20 )); then
    echo "# warning: the machine was ${busy}% busy before the run: figures will be noisy" >&2
fi

cargo bench --quiet -p queue-bench --bench queue_core --manifest-path "$root/Cargo.toml" -- "$@"
