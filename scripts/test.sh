#!/usr/bin/env bash
# Runs every sks test against real backends: PAM, slapd, MIT KDC, badger on
# disk, redis-server. As root it installs the Debian packages it needs first;
# otherwise it prints the apt command and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(libpam0g-dev slapd ldap-utils krb5-kdc krb5-admin-server krb5-user
          redis-server openssl systemd passwd util-linux wrk
          openjdk-17-jre-headless)   # keytool: an independent JKS writer for the TLS tests
for f in scripts/packages-*.txt; do [ -f "$f" ] && mapfile -t -O ${#packages[@]} packages < <(grep -v "^#" "$f" | grep .); done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "sks tests need these Debian packages: ${missing[*]}" >&2
    echo "install them as root:  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "== installing ${missing[*]}"
  apt-get update -qq
  # slapd asks debconf questions and the KDC packages try to start services:
  # neither is wanted; tests start private instances.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "sks tests must run as root: the PAM tests create a test user and check its password with pam_unix" >&2
  exit 1
fi

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
export SKS_REQUIRE_BACKENDS=1   # a missing backend fails the tests instead of skipping them

echo "== go vet"
go vet ./...
echo "== go test -race (real PAM, slapd, KDC, badger, redis)"
log=$(mktemp)
set +e
go test -race -count=1 -timeout 30m -v ./... > "$log" 2>&1
rc=$?
set -e
grep -E '^(ok|FAIL|\?|panic:)' "$log" || true
if [ "$rc" -ne 0 ]; then
  grep -E -B2 -A40 -- '--- FAIL|^panic:|build failed|cannot find' "$log" | head -400 >&2
  echo "FAIL: go test exited $rc (full log: $log)" >&2
  exit 1
fi
skips=$(grep -c -- '--- SKIP' "$log" || true)
if [ "$skips" != 0 ]; then
  grep -- '--- SKIP' -A2 "$log" >&2
  echo "FAIL: $skips tests skipped; a real-backend test that skips counts as missing" >&2
  exit 1
fi
echo "$(grep -c -- '--- PASS' "$log") passed, 0 failed, 0 skipped"

echo "== fuzz (bounded)"
# Every Fuzz function in the tree, each for a fixed number of executions.
# A count, not a duration: with -fuzztime=5s Go 1.26's coordinator can report
# a spurious "context deadline exceeded" when a worker is slow to acknowledge
# the deadline on a loaded machine (go.dev/issue/75804); a count has no
# deadline to race. FUZZCOUNT=200000 fuzzes longer.
fuzz() {
  if ! go test -run '^$' -fuzz "^$2\$" -fuzztime "${FUZZCOUNT:-20000}x" "$1" > /tmp/sks-fuzz.log 2>&1; then
    tail -40 /tmp/sks-fuzz.log >&2; echo "FAIL: fuzz $2 in $1 (inputs that fail are kept under $1testdata/fuzz/$2)" >&2; exit 1
  fi
  echo "ok fuzz $2 ($1)"
}
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r f; do
  for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$f"); do
    fuzz "$(dirname "$f")/" "$name"
  done
done
echo "== all tests passed"
