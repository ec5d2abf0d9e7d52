#!/usr/bin/env bash
# Saves the README's dashboard screenshots from a running stack: signs in with
# an operator key in a headless Chromium (over WebDriver, through chromedriver),
# then captures the overview and the page of a failed job (else a completed one).
#   scripts/dashboard-screenshots.sh URL KEY [QUEUE]
#     URL    the dashboard, as scripts/run.sh prints it (http://127.0.0.1:8080/dashboard)
#     KEY    an operator key (scripts/run.sh prints one)
#     QUEUE  whose job to show (default context)
#   OUT      where to write them (default docs/): dashboard-overview.png, dashboard-job.png
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

[ $# -ge 2 ] || die "usage: $0 URL KEY [QUEUE]"
url=${1%/}
key=$2
queue=${3:-context}
out=${OUT:-docs}
ensure_chromium
command -v python3 >/dev/null 2>&1 || apt_install python3
command -v curl >/dev/null 2>&1 || apt_install curl

port=$((20000 + RANDOM % 20000))
profile=$(mktemp -d)
chromedriver --port="$port" >/dev/null 2>&1 &
driver=$!
cleanup() { kill "$driver" 2>/dev/null || true; rm -rf "$profile"; }
trap cleanup EXIT
wait_for_tcp 127.0.0.1 "$port" chromedriver

wd="http://127.0.0.1:$port"
# A field of the JSON on stdin: json_get 'd["value"]'
json_get() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
call() { curl -fsS -X "$1" "$wd$2" -H 'Content-Type: application/json' ${3:+-d "$3"}; }

caps=$(python3 -c 'import json, sys; print(json.dumps({"capabilities": {"alwaysMatch": {
  "browserName": "chrome",
  "goog:chromeOptions": {"binary": "/usr/lib/chromium/chromium", "args": [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync",
    "--window-size=1280,1000", "--user-data-dir=" + sys.argv[1]]}}}}))' "$profile")
session=$(call POST /session "$caps" | json_get 'd["value"]["sessionId"]')
s="/session/$session"
go() { call POST "$s/url" "{\"url\": \"$1\"}" >/dev/null; }
find_el() {
  call POST "$s/element" "{\"using\": \"css selector\", \"value\": \"$1\"}" \
    | json_get 'd["value"]["element-6066-11e4-a52e-4f735466cecf"]'
}
shot() {
  call GET "$s/screenshot" | python3 -c 'import base64, json, sys; open(sys.argv[1], "wb").write(base64.b64decode(json.load(sys.stdin)["value"]))' "$1"
  log "saved $1"
}

go "$url/sign-in"
field=$(find_el 'input#key')
call POST "$s/element/$field/value" "$(python3 -c 'import json, sys; print(json.dumps({"text": sys.argv[1]}))' "$key")" >/dev/null
call POST "$s/element/$(find_el 'form.sign-in button')/click" '{}' >/dev/null
go "$url"
find_el 'table.queues' >/dev/null || die "not signed in: is $key an operator key?"
shot "$out/dashboard-overview.png"

for state in failed completed; do
  go "$url/queues/$queue?state=$state"
  if link=$(find_el 'tr[data-job] a.mono' 2>/dev/null); then
    call POST "$s/element/$link/click" '{}' >/dev/null
    find_el '[data-job-state]' >/dev/null
    shot "$out/dashboard-job.png"
    break
  fi
done
call DELETE "$s" >/dev/null || true
