#!/bin/sh
# System packages strata needs that pip cannot provide, all from Debian, never downloaded:
# - bubblewrap: the sandboxed Python runner (the tools feature; its tests skip without it);
# - chromium and chromium-driver: the browser tests (tests/browser) drive them headless;
# - postgresql: the store contract tests' throwaway cluster (scripts/postgres.sh), and a team's
#   own server when it runs strata on PostgreSQL (the database setting).
# Idempotent: installs only what is missing, and does nothing when all is there.
set -eu

missing=""
for pkg in bubblewrap chromium chromium-driver postgresql; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; install$missing yourself" \
        "(the sandbox and browser tests are skipped without them; PostgreSQL's fail in CI)" >&2
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-system-deps: installing$missing"
$sudo apt-get update -qq
# shellcheck disable=SC2086  # word splitting of the package list is intended
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
