#!/bin/sh
# System packages the test suite needs that pip cannot provide: Debian's chromium and its
# chromedriver, which the browser tests (tests/browser) drive headless. Never a downloaded
# browser. Idempotent: installs only what is missing, and does nothing when all is there.
set -eu

missing=""
for pkg in chromium chromium-driver; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-deps: apt-get not found; install$missing yourself" \
        "(the browser tests are skipped without them)" >&2
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "install-system-deps: installing$missing"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
