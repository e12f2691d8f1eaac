#!/usr/bin/env bash
# Runs every benchmark COUNT times (default 6) and summarises them with
# benchstat, side by side. Results go to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-6}
out=benchmarks/results
mkdir -p "$out"
# -count interleaves: each round runs every sub-benchmark (direct,
# pass-through, gateway side by side) before the next round starts, so
# load from elsewhere on the machine hits all of them alike.
go test -run '^$' -bench . -benchmem -count="$count" -timeout 120m . | tee "$out/main.txt"
# A fixed iteration count: failsafe-go's per-iteration cost varies with
# how many connections it leaves behind.
(cd benchmarks/peers && go test -run '^$' -bench . -benchmem -benchtime=3000x -count="$((count * 2))" -timeout 30m .) | tee "$out/peers.txt"
benchstat="go run golang.org/x/perf/cmd/benchstat@latest"
{
  $benchstat -filter '.name:(OpenAI OR RoundTrip OR Stream OR Inflight OR InflightMemory)' -col /via "$out/main.txt"
  $benchstat -filter '.name:ReplayThreshold' -col /path "$out/main.txt"
  $benchstat -filter '.name:Rewrite' -col /impl "$out/main.txt"
} > "$out/main.benchstat.txt"
$benchstat -col /lib "$out/peers.txt" > "$out/peers.benchstat.txt"
cat "$out/main.benchstat.txt" "$out/peers.benchstat.txt"
