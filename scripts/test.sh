#!/usr/bin/env bash
# Runs every test of the workspace against real Redis and PostgreSQL, starting them
# (and installing their Debian packages) when they are not reachable, the
# dashboard's in a headless Chromium (installed when missing), after the
# Kubernetes manifests' offline validation (scripts/test-k8s.sh), then
# Schemathesis against a running gateway (scripts/schemathesis.sh), then the quick
# start interrupted twice and run again (scripts/test-run-again.sh), then the
# images built and the compose stack run under podman (scripts/test-compose.sh).
#   REDIS_URL     default redis://127.0.0.1:6379
#   DATABASE_URL  default postgres://postgres:postgres@127.0.0.1:5432/test
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_rust
ensure_redis
ensure_redis_binaries
ensure_ocr
ensure_postgres
ensure_chromium

# A clean CI checkout builds everything once: incremental compilation would only
# add the cost of writing its caches.
if [[ "${CI:-}" == "true" ]]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

# Builds take sqlx's checked queries from the committed .sqlx/ (as
# .cargo/config.toml says; said again here so a SQLX_OFFLINE in the caller's
# environment cannot make CI build against its database), and that data must
# match the migrations and the queries: CI fails when it is stale.
export SQLX_OFFLINE=true
log "scripts/sqlx-prepare.sh --check"
scripts/sqlx-prepare.sh --check

log "cargo fmt --check"
cargo fmt --all -- --check
log "deploy/k8s: every overlay rendered and validated (scripts/test-k8s.sh)"
scripts/test-k8s.sh
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "doc tests"
cargo test --workspace --doc --quiet
if command -v cargo-nextest >/dev/null 2>&1; then
  log "cargo nextest run"
  cargo nextest run --workspace --no-fail-fast
else
  log "cargo test (install cargo-nextest for faster, per-test-process runs)"
  cargo test --workspace --no-fail-fast
fi
log "schemathesis against the gateway's /openapi.json"
scripts/schemathesis.sh
log "the quick start run again after Ctrl-C and kill -9 (scripts/test-run-again.sh)"
scripts/test-run-again.sh
log "the images and the compose stack, under podman (scripts/test-compose.sh)"
scripts/test-compose.sh
