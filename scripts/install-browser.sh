#!/usr/bin/env bash
# Headless Chromium for the browser tests (the report and the labelling page): Debian's `chromium` package,
# installed with apt-get when /usr/bin/chromium is missing. Playwright's own browser download does not work on
# machines without general internet access, so the tests drive this system browser through playwright.
#
#   scripts/install-browser.sh          install when missing (needs root and apt-get); print the browser's path
set -euo pipefail

BROWSER="${SALBENCH_CHROMIUM:-/usr/bin/chromium}"

die() { echo "install-browser: $*" >&2; exit 1; }

if [ ! -x "$BROWSER" ]; then
    [ "$(id -u)" -eq 0 ] || die "$BROWSER is missing and installing Debian's chromium needs root"
    command -v apt-get >/dev/null || die "$BROWSER is missing and there is no apt-get to install it"
    echo "install-browser: installing Debian's chromium with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
    [ -x "$BROWSER" ] || die "apt-get installed chromium but $BROWSER is still missing"
fi
echo "$BROWSER"
