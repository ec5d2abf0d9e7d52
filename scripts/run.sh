#!/usr/bin/env bash
# Brings up the stack and runs its main job.
#
# Today the stack is Redis plus the queue engine: a worker process consumes the
# `demo` queue (random 0-50 ms jobs, 10 % retryable and 2 % permanent failures),
# 2,000 jobs are enqueued, and `queuectl` shows what happened. The worker keeps
# running until Ctrl-C; `scripts/run.sh --once` stops after the demo.
#   REDIS_URL     default redis://127.0.0.1:6379 (started here when unreachable)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

once=
for arg in "$@"; do
  case "$arg" in
    --once) once=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) die "unknown option $arg (use --once or --help)" ;;
  esac
done

ensure_rust
ensure_redis
ensure_postgres

log "building (release)"
cargo build --release --quiet -p queue-core --bin queue-bench -p queuectl
bin=target/release
mkdir -p .run

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting a worker on queue demo (logs: .run/demo-worker.log)"
"$bin/queue-bench" worker --queue demo --concurrency 50 --sleep-ms 50 \
  --fail-rate 0.1 --permanent-rate 0.02 --backoff-ms 200 >.run/demo-worker.log 2>&1 &
pids+=($!)

log "enqueueing 2,000 jobs, plus 100 due in 3 s"
"$bin/queue-bench" enqueue --queue demo --count 2000 --kind demo.work
"$bin/queue-bench" enqueue --queue demo --count 100 --kind demo.later --delay-ms 3000

"$bin/queuectl" monitor --interval 1s --iterations 6
echo
"$bin/queuectl" stats demo
echo
log "dead letters (retry them with: $bin/queuectl retry demo all)"
"$bin/queuectl" failed demo --limit 5

cat <<MSG

Try:
  $bin/queuectl stats                 # every queue
  $bin/queuectl failed demo           # dead letters
  $bin/queuectl retry demo all        # put them back
  $bin/queue-bench enqueue --queue demo --count 10000
MSG

if [ -n "$once" ]; then
  exit 0
fi
log "worker still running; Ctrl-C to stop"
wait "${pids[@]}"
