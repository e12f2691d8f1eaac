#!/usr/bin/env bash
# Runs every test of the repository on a fresh machine, nothing skipped:
# installs what the tests need (aimock, the third-party provider of the
# integration tests, and the official openai npm client that drives gwproxy,
# from package-lock.json) when it is missing or differs
# from the lockfile, then runs `go test -race ./...` in every module of the
# workspace (go.work). Extra arguments go to go test (./test.sh -run
# TestAimock -v). CI runs this very script (.ci/run).
#
# Needs Go 1.23 or later (the workspace's; the library itself needs 1.22)
# and Node.js 20.15 or later (aimock's requirement,
# "engines" in package-lock.json); without them it stops and says what to
# install.
set -euo pipefail
cd "$(dirname "$0")"

fail() {
  echo "test.sh: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 ||
  fail "Go is not installed: install Go 1.23 or later (https://go.dev/dl/), then run ./test.sh again"

command -v node >/dev/null 2>&1 ||
  fail "Node.js is not installed: the aimock integration tests need Node.js 20.15 or later (https://nodejs.org/en/download), then run ./test.sh again"
node_version=$(node --version)
node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit(maj > 20 || (maj === 20 && min >= 15) ? 0 : 1);
' || fail "Node.js ${node_version} is too old: aimock needs Node.js 20.15 or later (https://nodejs.org/en/download)"

# The redisstore tests start their own redis-server (Debian's package; a
# test started without it fails under CI=true and is skipped otherwise).
command -v redis-server >/dev/null 2>&1 ||
  fail "redis-server is not installed: the redisstore tests start their own (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis), then run ./test.sh again"

# node_modules matches the lockfile when every package the lockfile pins is
# installed at its version (npm's node_modules/.package-lock.json records
# what is installed).
installed() {
  node -e '
    const fs = require("fs");
    const want = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    let have = {};
    try { have = JSON.parse(fs.readFileSync("node_modules/.package-lock.json", "utf8")).packages; } catch (e) { process.exit(1); }
    for (const [path, p] of Object.entries(want)) {
      if (path === "" || p.optional || p.peer) continue;
      if (!have[path] || have[path].version !== p.version || !fs.existsSync(path)) process.exit(1);
    }
  '
}
if ! installed; then
  command -v npm >/dev/null 2>&1 ||
    fail "npm is not installed (it comes with Node.js): install it, or run \`npm ci\` in $(pwd) yourself"
  echo "test.sh: installing aimock and the openai client from package-lock.json: npm ci --no-audit --no-fund"
  npm ci --no-audit --no-fund ||
    fail "\`npm ci --no-audit --no-fund\` failed in $(pwd): the aimock integration tests cannot run without it"
fi

# Every module of the workspace (go.work): the library, and the modules
# that only some users build (redisstore, gwotel, cmd/gwproxy,
# benchmarks/peers). Each runs `go test -race ./...`; the script fails when
# any of them fails.
status=0
for dir in $(go list -m -f '{{.Dir}}'); do
  rel=${dir#"$(pwd)"}
  echo "test.sh: go test -race ./... in .${rel}"
  (cd "$dir" && go test -race ./... "$@") || status=1
done
exit $status
