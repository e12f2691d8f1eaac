#!/usr/bin/env bash
# Runs every benchmark COUNT times (default 6) and summarises them with
# benchstat, side by side. Results go to benchmarks/results/.
#
# Interleaved: `go test -count=N` runs each sub-benchmark N times in a row,
# so load from elsewhere on the machine in one minute would hit direct and
# not gateway. Instead the test binary runs COUNT rounds of -count=1: every
# round runs every sub-benchmark (direct, pass-through, gateway side by
# side) once before the next round starts.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-6}
out=benchmarks/results
mkdir -p "$out"
bin=$(mktemp -d)/gwtransport.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" .
: > "$out/main.txt"
for round in $(seq "$count"); do
  echo "== round $round of $count" >&2
  "$bin" -test.run '^$' -test.bench . -test.benchmem -test.count=1 -test.timeout 60m | tee -a "$out/main.txt"
done
# A fixed iteration count: failsafe-go's per-iteration cost varies with
# how many connections it leaves behind.
pbin=$(dirname "$bin")/peers.test
(cd benchmarks/peers && go test -c -o "$pbin" .)
: > "$out/peers.txt"
for round in $(seq "$((count * 2))"); do
  (cd benchmarks/peers && "$pbin" -test.run '^$' -test.bench . -test.benchmem -test.benchtime=3000x -test.count=1 -test.timeout 30m) | tee -a "$out/peers.txt"
done
benchstat="go run golang.org/x/perf/cmd/benchstat@latest"
{
  $benchstat -filter '.name:(OpenAI OR RoundTrip OR Stream OR Inflight OR InflightMemory)' -col /via "$out/main.txt"
  $benchstat -filter '.name:ReplayThreshold' -col /path "$out/main.txt"
  $benchstat -filter '.name:(Rewrite OR ValidJSON OR SkipString)' -col /impl "$out/main.txt"
} > "$out/main.benchstat.txt"
$benchstat -col /lib "$out/peers.txt" > "$out/peers.benchstat.txt"
cat "$out/main.benchstat.txt" "$out/peers.benchstat.txt"
