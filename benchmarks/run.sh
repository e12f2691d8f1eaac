#!/usr/bin/env bash
# Runs every benchmark COUNT times (default 6) and summarises them with
# benchstat. Results go to benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-6}
out=benchmarks/results
mkdir -p "$out"
go test -run '^$' -bench . -benchmem -count="$count" -timeout 90m . | tee "$out/main.txt"
(cd benchmarks/peers && go test -run '^$' -bench . -benchmem -count="$count" -timeout 30m .) | tee "$out/peers.txt"
benchstat="go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"
{
  $benchstat -filter '/via:*' -col /via "$out/main.txt"
  $benchstat -filter '/impl:*' -col /impl "$out/main.txt"
} > "$out/main.benchstat.txt"
$benchstat -col /lib "$out/peers.txt" > "$out/peers.benchstat.txt"
cat "$out/main.benchstat.txt" "$out/peers.benchstat.txt"
