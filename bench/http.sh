#!/usr/bin/env bash
# (c) Throughput of an authenticated request (GET /api/tokens/self, token verified on
# every request) against an unauthenticated one (GET /healthz), on loopback with wrk,
# measured alternately in the same run. Prints requests/s and the ratio. Two more tokens
# show what watching costs: one with a 32-network IP allow-list (the match last), one with
# an audio budget (its remaining seconds are read for the Audio-Quota-* headers). Usage
# counting is on for all three.
#
#   bash bench/http.sh [seconds-per-run] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-3}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p hark
bin=target/release/hark
data=$(mktemp -d)
log=$data/server.log
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
echo "bench-password" | $bin --data-dir "$data" admin create-user --username bench --role admin --password-stdin 2>/dev/null
token=$($bin --data-dir "$data" admin create-token --username bench --name wrk --expires never 2>/dev/null)
# On a machine with two or more cores, pin the server to core 0 and wrk to core 1 so the
# two do not fight over a core; the comparison gets far less noisy.
pin_server=(); pin_client=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c 0); pin_client=(taskset -c 1)
fi
# Default logging (an access line per request), as a deployment runs it. The per-token rate
# limiter stays on (its check is part of every authenticated request) with a budget too large
# to run out, so the run measures verification rather than 429s.
"${pin_server[@]}" $bin --data-dir "$data" serve --listen 127.0.0.1:0 \
  --token-rate-per-minute 4000000000 2>"$log" &
pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$log" 2>/dev/null && break
  sleep 0.1
done
base=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //')
[ -n "$base" ] || { echo "server did not start" >&2; cat "$log" >&2; exit 1; }
curl -sf -H "Authorization: Bearer $token" "$base/api/tokens/self" >/dev/null
# Every authenticated answer must be a 200 for the numbers to mean anything.
statuses=$(for _ in 1 2 3; do curl -s -o /dev/null -w '%{http_code} ' -H "Authorization: Bearer $token" "$base/api/tokens/self"; done)
[ "$statuses" = "200 200 200 " ] || { echo "authenticated requests answer $statuses" >&2; exit 1; }

networks=$(python3 -c 'import json; print(json.dumps([f"10.{i}.0.0/16" for i in range(31)] + ["127.0.0.0/8"]))')
mint() {
  curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "$1" "$base/api/tokens" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
}
fenced=$(mint "{\"name\": \"fenced\", \"expires\": \"never\", \"allowed_cidrs\": $networks}")
budgeted=$(mint '{"name": "budgeted", "expires": "never", "audio_quota_minutes": 600}')
curl -sf -D - -o /dev/null -H "Authorization: Bearer $budgeted" "$base/api/tokens/self" | grep -qi '^audio-quota-remaining: 36000' \
  || { echo "the budgeted token does not answer its budget" >&2; exit 1; }

run() { "${pin_client[@]}" wrk -t1 -c32 -d"${secs}s" "$@" | awk '/Requests\/sec/ {print $2}'; }
total_health=0; total_auth=0; total_fenced=0; total_budgeted=0
for r in $(seq "$rounds"); do
  h=$(run "$base/healthz")
  a=$(run -H "Authorization: Bearer $token" "$base/api/tokens/self")
  f=$(run -H "Authorization: Bearer $fenced" "$base/api/tokens/self")
  b=$(run -H "Authorization: Bearer $budgeted" "$base/api/tokens/self")
  echo "round $r: /healthz ${h} req/s, /api/tokens/self ${a} (ratio $(echo "scale=3; $a / $h" | bc)), 32 networks ${f} ($(echo "scale=3; $f / $h" | bc)), budget ${b} ($(echo "scale=3; $b / $h" | bc))"
  total_health=$(echo "$total_health + $h" | bc); total_auth=$(echo "$total_auth + $a" | bc)
  total_fenced=$(echo "$total_fenced + $f" | bc); total_budgeted=$(echo "$total_budgeted + $b" | bc)
done
echo "overall ratio (authenticated / unauthenticated): $(echo "scale=3; $total_auth / $total_health" | bc)"
echo "overall ratio, 32-network IP allow-list: $(echo "scale=3; $total_fenced / $total_health" | bc)"
echo "overall ratio, audio budget: $(echo "scale=3; $total_budgeted / $total_health" | bc)"
