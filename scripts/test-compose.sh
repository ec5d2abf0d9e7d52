#!/usr/bin/env bash
# Builds the images of deploy/Dockerfile and runs docker-compose.yml for real,
# under podman (no Docker engine or registry needed), then checks it:
#   1. `up` (demo profile): every service healthy; the migrations applied once,
#      by the `migrate` container (exited 0 before the gateway started);
#   2. the five workloads through the published API: a person's QR file in the
#      storage volume, a company's context condensed, a sync run completed, a
#      payment followed to one movement, a photo's bib found;
#   3. the qr-worker scaled to 3 (QR_WORKER_REPLICAS): three consumers in its
#      group, a burst of jobs spread over the three; back to 1: the departed
#      consumers leave the group at once;
#   4. kill -9 of the qr-worker's process during a burst of registrations: the
#      container restarts and every person gets their QR;
#   5. `down`: no container, network or volume of the project left, the API
#      port free.
# Prints what each step cost. Installs podman, runc and debootstrap when
# missing; makes the base images with debootstrap (kept between runs in podman's
# storage) and stands them in for rust:1-bookworm, debian:bookworm-slim, Redis
# and PostgreSQL (deploy/podman/), so the Dockerfile builds unchanged.
#   COMPOSE_PROFILE   cargo profile of the images: dev (default, several times
#                     faster to build) or release
#   RSQ_CACHE_DIR     docker-compose's virtualenv (default ~/.cache/rsq)
#   KEEP_STACK=1      leave the stack up at the end (`down` is skipped)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

profile="${COMPOSE_PROFILE:-dev}"
case "$profile" in dev|release) ;; *) die "COMPOSE_PROFILE must be dev or release, not $profile";; esac
cache="${RSQ_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rsq}"
project="rsqtest$$$RANDOM"
tag="test-$profile"
work=$(mktemp -d "${TMPDIR:-/tmp}/rsq-compose.XXXXXX")
trap 'rm -rf "$work"' EXIT
costs=()
step_started=$(date +%s)
# Ends the current step: its cost joins the summary.
step_done() {
  local now
  now=$(date +%s)
  costs+=("$(printf '%-40s %4ds' "$1" $((now - step_started)))")
  step_started=$now
}

# ---------------------------------------------------------------------------
# Tools and base images

ensure_rust
ensure_podman
command -v curl >/dev/null 2>&1 || apt_install curl
ensure_docker_compose "$cache/compose-venv"
# The stand-ins' FROM lines and the Dockerfile's name these images.
ensure_debootstrap_image docker.io/library/debian:bookworm-slim
stand_in() {
  local image=$1 file=$2
  if ! podman image exists "$image"; then
    log "building $image from $file"
    podman build -q -f "$file" -t "$image" deploy/podman >/dev/null
  fi
}
stand_in docker.io/library/rust:1-bookworm deploy/podman/rust.Containerfile
stand_in localhost/rsq-redis:bookworm deploy/podman/redis.Containerfile
stand_in localhost/rsq-postgres:bookworm deploy/podman/postgres.Containerfile
step_done "tools and base images"

# ---------------------------------------------------------------------------
# The images, from the repository's Dockerfile. No toolchain can be downloaded
# here: the host's is mounted where the official rust image keeps it. The
# Dockerfile's cache mounts (crate registry, target/) persist between builds,
# so a rebuild compiles only what changed. Cargo trusts the host's CA bundle
# (through a cargo config beside the toolchain), so it reaches crates.io wherever
# the host does, e.g. through a TLS-inspecting proxy; the images' own
# ca-certificates stay Debian's.
toolchain_mounts=(--volume "$(rustup show home 2>/dev/null || echo "$HOME/.rustup"):/usr/local/rustup:ro"
                  --volume "$(dirname "$(command -v cargo)"):/usr/local/cargo/bin:ro")
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  printf '[http]\ncainfo = "/usr/local/share/rsq-host-ca.crt"\n' >"$work/cargo-config.toml"
  toolchain_mounts+=(--volume /etc/ssl/certs/ca-certificates.crt:/usr/local/share/rsq-host-ca.crt:ro
                     --volume "$work/cargo-config.toml:/usr/local/cargo/config.toml:ro")
fi
# The builder stage first, tagged: the service targets then reuse its layers,
# and a later run's prune keeps them.
for target in build api-gateway qr-worker context-worker sync-worker payment-scheduler photo-worker upstream-sim; do
  log "podman build --target $target (PROFILE=$profile)"
  # Docker's image format keeps HEALTHCHECK (OCI's has no field for it).
  if ! podman build --format docker -f deploy/Dockerfile --target "$target" \
      --build-arg PROFILE="$profile" "${toolchain_mounts[@]}" \
      -t "localhost/rsq-$target:$tag" . >"$work/build-$target.log" 2>&1; then
    tail -n 40 "$work/build-$target.log" >&2
    die "building the $target image failed (log above)"
  fi
  [ "$target" = build ] && step_done "image build: builder stage ($profile)"
done
# The images the tags above replaced: a gigabyte or so per source change.
podman image prune -f >/dev/null
step_done "image build: service images"

# ---------------------------------------------------------------------------
# The stack

# docker-compose talks to podman's Docker-compatible API.
podman system service --time=0 "unix://$work/podman.sock" >"$work/podman-service.log" 2>&1 &
service_pid=$!
for _ in $(seq 1 100); do [ -S "$work/podman.sock" ] && break; sleep 0.1; done
[ -S "$work/podman.sock" ] || { cat "$work/podman-service.log" >&2; die "podman system service did not start"; }
export DOCKER_HOST="unix://$work/podman.sock"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
random_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export API_PORT
API_PORT=$(free_port)
export API_ADMIN_TOKEN="admin-$(random_token)" API_USER_TOKEN="user-$(random_token)"
export RSQ_TAG=$tag REDIS_IMAGE=localhost/rsq-redis:bookworm POSTGRES_IMAGE=localhost/rsq-postgres:bookworm
# The demo's pace: a payment is checked every second, not every few minutes.
export PAYMENT_CHECK_DELAY_PENDING=1s PAYMENT_CHECK_DELAY_PROCESSING=1s PAYMENT_CHECK_DELAY_ACTIVE=1s
export QR_WORKER_REPLICAS=1
# A sync of 50 customers: bcrypt per new user is slow in a dev build.
export SIM_WISPRO_CLIENTS=50
api="http://127.0.0.1:$API_PORT"

compose() { "$cache/compose-venv/bin/docker-compose" --ansi never -p "$project" --profile demo "$@"; }
containers() { # [service]: the project's containers (names), running or not
  podman ps -a --filter "label=com.docker.compose.project=$project" \
    ${1:+--filter "label=com.docker.compose.service=$1"} --format '{{.Names}}'
}
dump_logs() { # [service]
  local c
  for c in $(containers "${1:-}"); do
    printf '\n----- logs of %s (last 40 lines) -----\n' "$c" >&2
    podman logs --tail 40 "$c" >&2 2>&1 || true
  done
}
fail() { # service message: the service's logs, then the message
  dump_logs "$1"
  die "$2"
}

health_pid=
down() {
  compose down -v --remove-orphans -t 1 >"$work/down.log" 2>&1 || { cat "$work/down.log" >&2; return 1; }
}
cleanup() {
  local status=$?
  set +e
  [ -n "$health_pid" ] && kill "$health_pid" 2>/dev/null
  if [ "${KEEP_STACK:-}" != 1 ] && [ -n "$(containers)" ]; then
    log "tearing the stack down"
    down
  fi
  kill "$service_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
  if ((status != 0)) && ((${#costs[@]})); then
    log "what the steps done cost:"
    printf '  %s\n' "${costs[@]}" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Podman runs health checks from systemd timers; without systemd (containers,
# most CI machines) nothing runs them, so this loop does, every two seconds.
(
  while sleep 2; do
    for c in $(podman ps --filter "label=com.docker.compose.project=$project" --format '{{.Names}}'); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
  done
) &
health_pid=$!

# GET/POST on the API: api_get PATH TOKEN, api_post PATH TOKEN [JSON]
api_get() { curl -fsS "$api$1" -H "Authorization: Bearer $2"; }
api_post() {
  curl -fsS -X POST "$api$1" -H "Authorization: Bearer $2" \
    ${3:+-H 'Content-Type: application/json' -d "$3"}
}
# A field of the JSON on stdin: json_get 'd["status"]'
json_get() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
# Retries COMMAND (a shell function) until it succeeds or SECONDS pass.
wait_until() { # seconds command...
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

log "compose up (project $project, API on $api)"
if ! compose up -d --no-build >"$work/up.log" 2>&1; then
  cat "$work/up.log" >&2
  dump_logs
  die "compose up failed (output and logs above)"
fi
step_done "up"

# ---------------------------------------------------------------------------
# 1. Healthy, migrated once

all_healthy() {
  local c health
  for c in $(containers); do
    [[ "$c" == *_migrate_* ]] && continue
    health=$(podman inspect --format '{{.State.Healthcheck.Status}}' "$c")
    [ "$health" = healthy ] || return 1
  done
}
if ! wait_until 120 all_healthy; then
  for c in $(containers); do
    printf '%s: %s\n' "$c" "$(podman inspect --format '{{.State.Status}} {{.State.Healthcheck.Status}}' "$c")" >&2
  done
  dump_logs
  die "not every service became healthy within 120 s"
fi
log "every service is healthy: $(containers | grep -cv _migrate_) containers"

# "healthy" is sticky: a container keeps it through its retries while a
# dependency stalls. Seen once here: a worker that started first had its
# PostgreSQL connections stall for about 45 s while the other containers came
# up, and every job it ran meanwhile failed to get a connection. So before the
# checks, every service must also answer its readiness probe (Redis and
# PostgreSQL through its pools) now, three rounds in a row, two seconds apart.
ready_now() {
  local c
  for c in $(containers); do
    [[ "$c" == *_migrate_* ]] && continue
    podman healthcheck run "$c" >/dev/null 2>&1 || return 1
  done
}
ready_rounds=0
steadily_ready() {
  if ready_now; then ready_rounds=$((ready_rounds + 1)); else ready_rounds=0; fi
  ((ready_rounds >= 3)) && return 0
  sleep 2
  return 1
}
if ! wait_until 120 steadily_ready; then
  dump_logs
  die "not every service answered its readiness probe three rounds in a row within 120 s"
fi

migrate=$(containers migrate)
[ "$(echo "$migrate" | wc -l)" = 1 ] || die "expected one migrate container, found: $migrate"
read -r status code finished < <(podman inspect --format '{{.State.Status}} {{.State.ExitCode}} {{.State.FinishedAt.Unix}}' "$migrate")
[ "$status" = exited ] && [ "$code" = 0 ] || fail migrate "the migrate container is $status with exit code $code, expected exited 0"
gateway=$(containers api-gateway)
started=$(podman inspect --format '{{.State.StartedAt.Unix}}' "$gateway")
((finished <= started)) || fail migrate "the gateway started ($started) before the migrations finished ($finished)"
psql_in_postgres() { podman exec "$(containers postgres)" psql -U postgres -d rsq -qAtc "$1"; }
expected=$(find crates/store/migrations -name '*.sql' | wc -l)
applied=$(psql_in_postgres "SELECT count(*), count(DISTINCT version), bool_and(success) FROM _sqlx_migrations")
[ "$applied" = "$expected|$expected|t" ] ||
  fail migrate "_sqlx_migrations holds (rows|versions|all successful) $applied, expected $expected|$expected|t"
log "migrations: $expected versions applied once, by the migrate container (exit 0) before the gateway started"
step_done "check: healthy, migrated once"

# ---------------------------------------------------------------------------
# 2. The five workloads through the published API

storage=$(podman volume inspect --format '{{.Mountpoint}}' "${project}_storage")
register() { # document: registers a person, prints their id
  api_post /api/persons "$API_USER_TOKEN" \
    "{\"document\": \"$1\", \"first_name\": \"Ana\", \"last_name\": \"Pérez\"}" | json_get 'd["id"]'
}
qr_ready() { # person id: ready and its file in the storage volume
  local person path
  person=$(api_get "/api/persons/$1" "$API_USER_TOKEN") || return 1
  [ "$(echo "$person" | json_get 'd["qr_status"]')" = ready ] || return 1
  path=$(echo "$person" | json_get 'd["qr_path"]')
  [ -s "$storage/$path" ]
}
person=$(register "V-compose-$project")
wait_until 60 qr_ready "$person" || fail qr-worker "person $person has no QR file in the storage volume after 60 s"
log "QR: person $person's file is in the storage volume"

context="Acme Andina sells irrigation equipment to farms in the Andean valleys."
while [ ${#context} -le 1600 ]; do
  context="$context It installs drip systems, pumps and solar panels, trains farmers to keep them, and visits each installation twice a year."
done
company=$(api_post /api/companies "$API_USER_TOKEN" "{\"name\": \"Acme Andina\", \"context\": \"$context\"}" | json_get 'd["id"]')
condensed() {
  [ "$(api_get "/api/companies/$company" "$API_USER_TOKEN" | json_get 'd["context_status"]')" = processed ]
}
wait_until 60 condensed || fail context-worker "company $company's context is not processed after 60 s"
length=$(api_get "/api/companies/$company" "$API_USER_TOKEN" | json_get 'len(d["context"])')
((length < ${#context})) || fail context-worker "company $company's context was not condensed (${#context} -> $length characters)"
log "context: ${#context} characters condensed to $length"

run=$(api_post /api/users/sync-wispro-all "$API_ADMIN_TOKEN" | json_get 'd["run_id"]')
sync_done() {
  sync_status=$(api_get "/api/sync-runs/$run" "$API_ADMIN_TOKEN" | json_get 'd["status"]')
  [ "$sync_status" = completed ] || [ "$sync_status" = failed ]
}
wait_until 180 sync_done && [ "$sync_status" = completed ] ||
  fail sync-worker "sync run $run is ${sync_status:-unknown}, expected completed within 180 s"
log "sync: run $run completed ($(api_get "/api/sync-runs/$run" "$API_ADMIN_TOKEN" | json_get 'd["created"]') users created)"

payment=$(api_post /api/payments/qr "$API_USER_TOKEN" \
  '{"amount": "125.50", "currency": "BOB", "description": "Compose order script:pending,processing,completed"}' | json_get 'd["qr_id"]')
paid() {
  [ "$(api_get "/api/payments/$payment" "$API_USER_TOKEN" | json_get 'd["status"]')" = completed ]
}
wait_until 90 paid || fail payment-scheduler "payment $payment is not completed after 90 s"
movements=$(api_get "/api/payments/$payment" "$API_USER_TOKEN" | json_get 'len(d["movements"])')
[ "$movements" = 1 ] || fail payment-scheduler "payment $payment has $movements movements, expected 1"
log "payment: $payment completed with one movement"

batch=$(curl -fsS -X POST "$api/api/photos" -H "Authorization: Bearer $API_USER_TOKEN" \
  -F files=@crates/bib-detect/testdata/0000.jpg -F files=@crates/bib-detect/testdata/0001.jpg)
batch_id=$(echo "$batch" | json_get 'd["batch_id"]')
photos_done() { [ "$(api_get "/api/photo-batches/$batch_id" "$API_USER_TOKEN" | json_get 'd["done"]')" = True ]; }
wait_until 120 photos_done || fail photo-worker "photo batch $batch_id is not done after 120 s"
bibs=
for photo in $(echo "$batch" | json_get '" ".join(map(str, d["ids"]))'); do
  bibs="$bibs$(api_get "/api/photos/$photo" "$API_USER_TOKEN" | json_get '" ".join(x["number"] for x in d["detections"])') "
done
[ -n "${bibs// /}" ] || fail photo-worker "no bib read in photo batch $batch_id: $(api_get "/api/photo-batches/$batch_id" "$API_USER_TOKEN")"
log "photos: bibs $bibs"
step_done "check: five workloads"

# ---------------------------------------------------------------------------
# 3. Scaled to 3 and back

qr_consumers() { api_get /api/queues "$API_ADMIN_TOKEN" | json_get 'next(q["consumers"] for q in d if q["name"] == "qr")'; }
# A qr-worker container's completed jobs, from its own /metrics.
completed_jobs() {
  local n
  n=$(podman exec "$1" qr-worker healthcheck 127.0.0.1:9101/metrics |
    grep '^rsq_jobs_total{' | grep 'queue="qr"' | grep 'outcome="completed"' | awk '{print $2}')
  echo "${n:-0}"
}
registrations() { # count prefix: registers count persons, their ids in $work/prefix.ids
  local i
  : >"$work/$2.ids"
  for i in $(seq 1 "$1"); do
    register "V-$2-$project-$i" >>"$work/$2.ids" || return 1
  done
}
all_qr_ready() { # prefix
  local id
  for id in $(cat "$work/$1.ids"); do qr_ready "$id" || return 1; done
}

log "scaling the qr-worker to 3"
QR_WORKER_REPLICAS=3 compose up -d --no-build --no-deps qr-worker >"$work/scale.log" 2>&1 || { cat "$work/scale.log" >&2; fail qr-worker "scaling to 3 failed"; }
three_healthy() {
  local c n=0
  for c in $(containers qr-worker); do
    [ "$(podman inspect --format '{{.State.Healthcheck.Status}}' "$c")" = healthy ] && n=$((n + 1))
  done
  ((n == 3))
}
wait_until 60 three_healthy || fail qr-worker "3 healthy qr-worker containers expected within 60 s"
declare -A before
for c in $(containers qr-worker); do before[$c]=$(completed_jobs "$c"); done
registrations 30 spread
wait_until 60 all_qr_ready spread || fail qr-worker "not every person of the burst got their QR within 60 s"
spread=
for c in $(containers qr-worker); do
  done_here=$(( $(completed_jobs "$c") - ${before[$c]:-0} ))
  spread="$spread $c=$done_here"
  ((done_here > 0)) || fail qr-worker "qr-worker container $c completed none of the 30 jobs (${spread# })"
done
# Counted after the burst: before 7.2, Redis adds a consumer to the group at its
# first delivery, not at its first read.
three_consumers() { [ "$(qr_consumers)" = 3 ]; }
wait_until 10 three_consumers || fail qr-worker "the qr group has $(qr_consumers) consumers with 3 workers, expected 3"
log "scaled to 3: 3 consumers; qr jobs completed per container during the burst:${spread}"

log "scaling the qr-worker back to 1"
QR_WORKER_REPLICAS=1 compose up -d --no-build --no-deps qr-worker >"$work/scale.log" 2>&1 || { cat "$work/scale.log" >&2; fail qr-worker "scaling to 1 failed"; }
one_consumer() { [ "$(qr_consumers)" = 1 ]; }
# Far below the 10 visibility timeouts after which a dead consumer is removed:
# the stopped workers must leave the group themselves.
wait_until 20 one_consumer || fail qr-worker "the qr group still has $(qr_consumers) consumers 20 s after scaling to 1"
log "scaled back to 1: the departed consumers left the group"
step_done "check: scale to 3 and back"

# ---------------------------------------------------------------------------
# 4. kill -9 during a burst

worker=$(containers qr-worker)
restarts=$(podman inspect --format '{{.RestartCount}}' "$worker")
registrations 60 burst &
burst=$!
burst_started() { [ "$(wc -l <"$work/burst.ids")" -ge 10 ]; }
wait_until 30 burst_started || fail api-gateway "the burst of registrations did not start"
pid=$(podman inspect --format '{{.State.Pid}}' "$worker")
log "kill -9 of the qr-worker's process ($pid) during the burst"
kill -9 "$pid"
wait "$burst" || fail api-gateway "a registration of the burst failed (the API must not depend on the worker)"
restarted() {
  (($(podman inspect --format '{{.RestartCount}}' "$worker") > restarts)) &&
    [ "$(podman inspect --format '{{.State.Healthcheck.Status}}' "$worker")" = healthy ]
}
wait_until 60 restarted || fail qr-worker "the killed qr-worker did not restart healthy within 60 s"
wait_until 90 all_qr_ready burst || fail qr-worker "not every person of the burst got their QR within 90 s of the kill"
log "killed: restart count $restarts -> $(podman inspect --format '{{.RestartCount}}' "$worker"); all 60 persons have their QR"
step_done "check: kill -9 during a burst"

# ---------------------------------------------------------------------------
# 5. down

if [ "${KEEP_STACK:-}" = 1 ]; then
  log "KEEP_STACK=1: the stack stays up (project $project, API on $api); down with:"
  log "  DOCKER_HOST=$DOCKER_HOST $cache/compose-venv/bin/docker-compose -p $project --profile demo down -v"
  trap - EXIT
  exit 0
fi
down || die "compose down failed (output above)"
left=$(
  podman ps -a --filter "label=com.docker.compose.project=$project" --format 'container {{.Names}}'
  podman network ls --format '{{.Name}}' | grep "^${project}_" | sed 's/^/network /'
  podman volume ls --format '{{.Name}}' | grep "^${project}_" | sed 's/^/volume /'
) || true
[ -z "$left" ] || die "compose down left behind: $left"
tcp_open 127.0.0.1 "$API_PORT" && die "the API port $API_PORT is still open after down"
step_done "down (nothing left)"

log "the compose stack passed; what each step cost:"
printf '  %s\n' "${costs[@]}" >&2
