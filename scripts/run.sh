#!/usr/bin/env bash
# Brings up the stack and runs its main job: Redis, PostgreSQL, api-gateway,
# qr-worker, context-worker, sync-worker, payment-scheduler, photo-worker and
# upstream-sim (the simulated LLM, Wispro and bank); registers a demo person and
# waits for their QR code, creates a demo company whose long context the LLM
# condenses, syncs the simulated Wispro customers into users, creates a payment
# QR and follows it until paid, uploads race photos and waits for their bib
# numbers, leaves one company context failed (the LLM made to fail) for the
# dashboard to retry, then prints the dashboard's URL with an operator key and a
# working curl for each flow. Runs until Ctrl-C; `--once` stops after the demo.
#   API_ADDR         gateway address (default 127.0.0.1:8080)
#   GATEWAY_HEALTH_ADDR  the gateway's /healthz, /readyz, /metrics (default 127.0.0.1:9100)
#   API_ADMIN_TOKEN  admin bearer token (generated and printed when unset)
#   API_USER_TOKEN   user bearer token (generated and printed when unset)
#   LLM_URL          the LLM the context-worker calls (default: the simulator)
#   WISPRO_URL, WISPRO_TOKEN  the Wispro API the sync-worker reads (default: the simulator)
#   BANK_URL         the bank the gateway and payment-scheduler call (default: the simulator)
#   PAYMENT_CHECK_DELAY_PENDING/_PROCESSING/_ACTIVE  the demo checks every 1s (production: 2m, 5m, 15m)
#   CONTEXT_BACKOFF  the demo retries a context after 200ms
#   REDIS_URL, DATABASE_URL, STORAGE_DIR (default ./storage), RUST_LOG
#   RUN_PROFILE      cargo profile of the binaries: release (default) or dev
# Safe to run again after Ctrl-C or a kill -9 of everything it started, with the
# data of earlier runs in PostgreSQL and Redis: the demo follows a sync run left
# active by an interrupted run (the 409 names it) instead of starting one.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

once=
for arg in "$@"; do
  case "$arg" in
    --once) once=1 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) die "unknown option $arg (use --once or --help)" ;;
  esac
done

ensure_rust
ensure_redis
ensure_ocr
ensure_postgres
command -v curl >/dev/null 2>&1 || apt_install curl

export API_ADDR="${API_ADDR:-127.0.0.1:8080}"
export STORAGE_DIR="${STORAGE_DIR:-$PWD/storage}"
export RUST_LOG="${RUST_LOG:-info}"
random_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export API_ADMIN_TOKEN="${API_ADMIN_TOKEN:-admin-$(random_token)}"
export API_USER_TOKEN="${API_USER_TOKEN:-user-$(random_token)}"
api="http://$API_ADDR"
gateway_health="${GATEWAY_HEALTH_ADDR:-127.0.0.1:9100}"
qr_health="${QR_HEALTH_ADDR:-127.0.0.1:9101}"
context_health="${CONTEXT_HEALTH_ADDR:-127.0.0.1:9102}"
sim_addr="${SIM_ADDR:-127.0.0.1:9200}"
sync_health="${SYNC_HEALTH_ADDR:-127.0.0.1:9103}"
payment_health="${PAYMENT_HEALTH_ADDR:-127.0.0.1:9104}"
photo_health="${PHOTO_HEALTH_ADDR:-127.0.0.1:9105}"
export BANK_URL="${BANK_URL:-http://$sim_addr}"
# The demo follows a payment to the end within seconds; production checks a
# pending QR every 2 minutes.
export PAYMENT_CHECK_DELAY_PENDING="${PAYMENT_CHECK_DELAY_PENDING:-1s}"
export PAYMENT_CHECK_DELAY_PROCESSING="${PAYMENT_CHECK_DELAY_PROCESSING:-1s}"
export PAYMENT_CHECK_DELAY_ACTIVE="${PAYMENT_CHECK_DELAY_ACTIVE:-1s}"
export LLM_URL="${LLM_URL:-http://$sim_addr}"
export WISPRO_URL="${WISPRO_URL:-http://$sim_addr}"
export WISPRO_TOKEN="${WISPRO_TOKEN:-wispro-sim-token}"
# The demo's failing context uses its three attempts within a second or two.
export CONTEXT_BACKOFF="${CONTEXT_BACKOFF:-200ms}"

for addr in "$API_ADDR" "$gateway_health" "$qr_health" "$context_health" "$sync_health" "$payment_health" "$photo_health" "$sim_addr"; do
  if tcp_open "${addr%:*}" "${addr##*:}"; then
    die "$addr is already in use (another scripts/run.sh?); stop it or set API_ADDR / GATEWAY_HEALTH_ADDR / QR_HEALTH_ADDR / CONTEXT_HEALTH_ADDR / SYNC_HEALTH_ADDR / PAYMENT_HEALTH_ADDR / PHOTO_HEALTH_ADDR / SIM_ADDR"
  fi
done

profile="${RUN_PROFILE:-release}"
case "$profile" in
  release) bin=target/release ;;
  dev) bin=target/debug ;;
  *) die "RUN_PROFILE must be release or dev, not $profile" ;;
esac
log "building ($profile): api-gateway, qr-worker, context-worker, sync-worker, payment-scheduler, photo-worker, upstream-sim, queuectl"
cargo build --profile "$profile" --quiet -p api-gateway -p qr-worker -p context-worker -p sync-worker -p payment-scheduler -p photo-worker -p upstream-sim -p queuectl
mkdir -p .run "$STORAGE_DIR"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "applying database migrations"
"$bin/api-gateway" migrate >.run/migrate.log 2>&1 || { cat .run/migrate.log >&2; die "migrations failed"; }

log "starting upstream-sim on $sim_addr (logs .run/upstream-sim.log)"
# A small customer base, so the demo sync (bcrypt cost 10 per new user) is quick.
SIM_ADDR="$sim_addr" SIM_WISPRO_CLIENTS="${SIM_WISPRO_CLIENTS:-200}" "$bin/upstream-sim" >.run/upstream-sim.log 2>&1 &
pids+=($!)
log "starting context-worker (health $context_health, LLM $LLM_URL, logs .run/context-worker.log)"
HEALTH_ADDR="$context_health" "$bin/context-worker" >.run/context-worker.log 2>&1 &
pids+=($!)
log "starting sync-worker (health $sync_health, Wispro $WISPRO_URL, logs .run/sync-worker.log)"
HEALTH_ADDR="$sync_health" "$bin/sync-worker" >.run/sync-worker.log 2>&1 &
pids+=($!)
log "starting payment-scheduler (health $payment_health, bank $BANK_URL, logs .run/payment-scheduler.log)"
HEALTH_ADDR="$payment_health" "$bin/payment-scheduler" >.run/payment-scheduler.log 2>&1 &
pids+=($!)
log "starting photo-worker (health $photo_health, logs .run/photo-worker.log)"
HEALTH_ADDR="$photo_health" "$bin/photo-worker" >.run/photo-worker.log 2>&1 &
pids+=($!)
log "starting qr-worker (health $qr_health, logs .run/qr-worker.log)"
HEALTH_ADDR="$qr_health" "$bin/qr-worker" >.run/qr-worker.log 2>&1 &
pids+=($!)
log "starting api-gateway on $api (health $gateway_health, logs .run/api-gateway.log)"
HEALTH_ADDR="$gateway_health" "$bin/api-gateway" >.run/api-gateway.log 2>&1 &
pids+=($!)

wait_ready() {
  local url=$1 name=$2 log=$3
  for _ in $(seq 1 150); do
    curl -fs "$url" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  tail -n 20 "$log" >&2
  die "$name is not ready at $url"
}
wait_ready "http://$gateway_health/readyz" api-gateway .run/api-gateway.log
wait_ready "http://$qr_health/readyz" qr-worker .run/qr-worker.log
wait_ready "http://$context_health/readyz" context-worker .run/context-worker.log
wait_ready "http://$sync_health/readyz" sync-worker .run/sync-worker.log
wait_ready "http://$payment_health/readyz" payment-scheduler .run/payment-scheduler.log
wait_ready "http://$photo_health/readyz" photo-worker .run/photo-worker.log
wait_ready "http://$sim_addr/healthz" upstream-sim .run/upstream-sim.log

# Unique across runs, however close together (earlier runs' persons stay).
document="V-$(date +%s%N)"
log "registering a demo person (document $document)"
response=$(curl -fsS -X POST "$api/api/persons" \
  -H "Authorization: Bearer $API_USER_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"document\": \"$document\", \"first_name\": \"Ana\", \"last_name\": \"Pérez\", \"email\": \"ana@example.com\"}")
echo "$response"
id=$(echo "$response" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
qr_path=$(echo "$response" | sed -n 's/.*"qr_path":"\([^"]*\)".*/\1/p')
for _ in $(seq 1 100); do
  status=$(curl -fsS "$api/api/persons/$id" -H "Authorization: Bearer $API_USER_TOKEN" | sed -n 's/.*"qr_status":"\([a-z]*\)".*/\1/p')
  [ "$status" != pending ] && break
  sleep 0.1
done
log "qr_status: $status; the QR landed at $STORAGE_DIR/$qr_path"

log "creating a demo company with a long context (condensed by the LLM in the background)"
context="Acme Andina sells irrigation equipment to farms in the Andean valleys."
while [ ${#context} -le 1600 ]; do
  context="$context It installs drip systems, pumps and solar panels, trains farmers to keep them, and visits each installation twice a year."
done
company=$(curl -fsS -X POST "$api/api/companies" \
  -H "Authorization: Bearer $API_USER_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"name\": \"Acme Andina\", \"context\": \"$context\"}")
company_id=$(echo "$company" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
for _ in $(seq 1 100); do
  company=$(curl -fsS "$api/api/companies/$company_id" -H "Authorization: Bearer $API_USER_TOKEN")
  context_status=$(echo "$company" | sed -n 's/.*"context_status":"\([a-z]*\)".*/\1/p')
  [ "$context_status" != pending ] && break
  sleep 0.1
done
condensed=$(echo "$company" | sed -n 's/.*"context":"\([^"]*\)".*/\1/p')
log "context_status: $context_status; ${#context} characters condensed to ${#condensed}"

log "synchronising the Wispro customers into users (admin)"
run=$(curl -sS -w '\n%{http_code}' -X POST "$api/api/users/sync-wispro-all" -H "Authorization: Bearer $API_ADMIN_TOKEN")
code=${run##*$'\n'}
run=${run%$'\n'*}
run_id=$(echo "$run" | sed -n 's/.*"run_id":\([0-9]*\).*/\1/p')
case "$code" in
  202) ;;
  # An interrupted earlier run left its sync active: its job resumes in this
  # sync-worker (after the visibility timeout), so the demo follows that run.
  409) log "sync run $run_id is still active (an earlier run.sh was interrupted); following it" ;;
  *) die "starting the sync answered $code: $run" ;;
esac
[ -n "$run_id" ] || die "no run_id in the sync answer: $run"
for _ in $(seq 1 600); do
  run=$(curl -fsS "$api/api/sync-runs/$run_id" -H "Authorization: Bearer $API_ADMIN_TOKEN")
  sync_status=$(echo "$run" | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
  case "$sync_status" in completed|failed) break ;; esac
  sleep 0.2
done
log "sync run $run_id: $sync_status; $(echo "$run" | sed -n 's/.*\("created":[0-9]*,"updated":[0-9]*,"skipped":[0-9]*,"errors":[0-9]*\).*/\1/p')"

# A field of the JSON on stdin: json_get 'd["status"]'
json_get() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

log "creating a payment QR of 125.50 BOB at the bank (the simulator's script: pending, processing, completed)"
payment=$(curl -fsS -X POST "$api/api/payments/qr" \
  -H "Authorization: Bearer $API_USER_TOKEN" -H 'Content-Type: application/json' \
  -d '{"amount": "125.50", "currency": "BOB", "description": "Demo order 1001 script:pending,processing,completed"}')
qr_id=$(echo "$payment" | json_get 'd["qr_id"]')
for _ in $(seq 1 300); do
  payment=$(curl -fsS "$api/api/payments/$qr_id" -H "Authorization: Bearer $API_USER_TOKEN")
  payment_status=$(echo "$payment" | json_get 'd["status"]')
  case "$payment_status" in completed|cancelled|expired) break ;; esac
  sleep 0.2
done
movements=$(echo "$payment" | json_get 'len(d["movements"])')
log "payment $qr_id: $payment_status after $(echo "$payment" | json_get 'd["checks_made"]') checks ($(echo "$payment" | json_get '", ".join(str(c["status"]) for c in d["checks"])')); $movements movement booked"

photos=(crates/bib-detect/testdata/0000.jpg crates/bib-detect/testdata/0001.jpg crates/bib-detect/testdata/0002.jpg)
log "uploading ${#photos[@]} race photos (bib numbers are read in the background)"
batch=$(curl -fsS -X POST "$api/api/photos" -H "Authorization: Bearer $API_USER_TOKEN" \
  $(printf -- '-F files=@%s ' "${photos[@]}"))
batch_id=$(echo "$batch" | json_get 'd["batch_id"]')
for _ in $(seq 1 300); do
  progress=$(curl -fsS "$api/api/photo-batches/$batch_id" -H "Authorization: Bearer $API_USER_TOKEN")
  [ "$(echo "$progress" | json_get 'd["done"]')" = True ] && break
  sleep 0.2
done
photos_completed=$(echo "$progress" | json_get 'd["completed"]')
log "photo batch $batch_id: $photos_completed completed, $(echo "$progress" | json_get 'd["failed"]') failed"
for photo_id in $(echo "$batch" | json_get '" ".join(map(str, d["ids"]))'); do
  bibs=$(curl -fsS "$api/api/photos/$photo_id" -H "Authorization: Bearer $API_USER_TOKEN" \
    | json_get '" ".join(x["number"] for x in d["detections"])')
  log "photo $photo_id: bibs ${bibs:-none}"
  [ -n "$bibs" ] && bib=${bibs%% *}
done
# A job for the dashboard to retry: the LLM fails every call while a second
# company's context is condensed, so its job ends in the context queue's
# failed jobs; then the LLM is back.
log "a company whose context fails (the simulated LLM made to fail), for the dashboard to retry"
curl -fsS -X POST "http://$sim_addr/_sim/llm/knobs" -H 'Content-Type: application/json' \
  -d '{"fail_next": 1000}' >/dev/null
failing=$(curl -fsS -X POST "$api/api/companies" \
  -H "Authorization: Bearer $API_USER_TOKEN" -H 'Content-Type: application/json' \
  -d "{\"name\": \"Andes Retry Demo\", \"context\": \"$context\"}")
failing_id=$(echo "$failing" | json_get 'd["id"]')
for _ in $(seq 1 300); do
  failing_status=$(curl -fsS "$api/api/companies/$failing_id" -H "Authorization: Bearer $API_USER_TOKEN" \
    | json_get 'd["context_status"]')
  [ "$failing_status" != pending ] && break
  sleep 0.2
done
curl -fsS -X POST "http://$sim_addr/_sim/llm/knobs" -H 'Content-Type: application/json' \
  -d '{"fail_next": 0}' >/dev/null
log "company $failing_id: context $failing_status; its job waits in the context queue's failed jobs (the LLM works again)"

log "creating an operator API key for the dashboard"
operator_key=$(curl -fsS -X POST "$api/api/admin/keys" \
  -H "Authorization: Bearer $API_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"name": "dashboard-demo", "role": "operator", "expires": "7d"}' | json_get 'd["key"]')
echo
"$bin/queuectl" stats

cat <<MSG

The stack is up. Tokens:
  export API_USER_TOKEN=$API_USER_TOKEN
  export API_ADMIN_TOKEN=$API_ADMIN_TOKEN

Dashboard: open $api/dashboard and sign in with this operator key (valid 7 days):
  $operator_key
The context queue has a failed job (company $failing_id): open the queue, Retry…, Yes, retry;
it completes, and the Audit log shows that dashboard-demo retried it.

Register a person (answers 201 at once; the QR follows in the background):
  curl -s -X POST $api/api/persons -H "Authorization: Bearer \$API_USER_TOKEN" \\
    -H 'Content-Type: application/json' \\
    -d '{"document": "V-12345678", "first_name": "Ana", "last_name": "Pérez"}'
Its status and its QR (PNG files land under $STORAGE_DIR/qr/):
  curl -s $api/api/persons/$id -H "Authorization: Bearer \$API_USER_TOKEN"
  curl -s $api/api/persons/$id/qr -H "Authorization: Bearer \$API_USER_TOKEN" -o qr.png
Create a company (a context over 1,500 characters is condensed by the LLM later):
  curl -s -X POST $api/api/companies -H "Authorization: Bearer \$API_USER_TOKEN" \\
    -H 'Content-Type: application/json' -d '{"name": "Acme", "context": "..."}'
  curl -s $api/api/companies/$company_id -H "Authorization: Bearer \$API_USER_TOKEN"
Synchronise every Wispro customer into users (admin; one run at a time, 409 otherwise):
  curl -s -X POST $api/api/users/sync-wispro-all -H "Authorization: Bearer \$API_ADMIN_TOKEN"
  curl -s $api/api/sync-runs/$run_id -H "Authorization: Bearer \$API_ADMIN_TOKEN"
Create a payment QR at the bank (201 at once; its status is checked in the background until paid):
  curl -s -X POST $api/api/payments/qr -H "Authorization: Bearer \$API_USER_TOKEN" \\
    -H 'Content-Type: application/json' -d '{"amount": "125.50", "currency": "BOB", "description": "Order 1001"}'
  curl -s $api/api/payments/$qr_id -H "Authorization: Bearer \$API_USER_TOKEN"
Upload race photos (202 at once; bibs are read in the background) and find a runner's photos:
  curl -s -X POST $api/api/photos -H "Authorization: Bearer \$API_USER_TOKEN" -F files=@photo1.jpg -F files=@photo2.jpg
  curl -s $api/api/photo-batches/$batch_id -H "Authorization: Bearer \$API_USER_TOKEN"
  curl -s "$api/api/photos?bib=${bib:-1234}" -H "Authorization: Bearer \$API_USER_TOKEN"
Queues (admin):
  curl -s $api/api/queues -H "Authorization: Bearer \$API_ADMIN_TOKEN"
  $bin/queuectl stats
API description: $api/openapi.json
MSG

if [ -n "$once" ]; then
  [ "$status" = ready ] || die "the demo QR is $status, expected ready (see .run/qr-worker.log)"
  [ "$sync_status" = completed ] || die "the demo sync run is $sync_status, expected completed (see .run/sync-worker.log)"
  [ "$context_status" = processed ] || die "the demo company's context is $context_status, expected processed (see .run/context-worker.log)"
  [ "$payment_status" = completed ] && [ "$movements" = 1 ] || die "the demo payment is $payment_status with $movements movements, expected completed with 1 (see .run/payment-scheduler.log)"
  [ "$photos_completed" = "${#photos[@]}" ] && [ -n "${bib:-}" ] || die "the demo photos: $progress, no bib read (see .run/photo-worker.log)"
  [ "$failing_status" = failed ] || die "the demo's failing context is $failing_status, expected failed (see .run/context-worker.log)"
  [ -n "$operator_key" ] || die "no operator key was created (see .run/api-gateway.log)"
  exit 0
fi
log "running; Ctrl-C to stop"
wait "${pids[@]}"
