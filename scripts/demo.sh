#!/usr/bin/env bash
# Runs sks on its embedded defaults: tokens in badger under ./data, the
# built-in demo realm (user "demo", password in ./data/demo-password), port 4431.
# Building needs Go and libpam0g-dev (cgo, for the PAM module); as root this
# installs the package, otherwise it prints the apt command and stops.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
if ! dpkg-query -W -f='${Status}' libpam0g-dev 2>/dev/null | grep -q "install ok installed"; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "building sks needs libpam0g-dev; as root run: apt-get update && apt-get install -y libpam0g-dev" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpam0g-dev >/dev/null
fi
go build -o ./sks ./cmd/sks
exec ./sks -d ./data -demo "$@"
