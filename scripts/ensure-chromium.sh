#!/usr/bin/env bash
# Make sure Debian's chromium is present for the real-browser tests.
set -eu
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium and chromium-driver (Debian packages) for the browser tests…"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
else
  echo "chromium is not installed: the browser tests will be skipped." \
       "Install it with: sudo apt-get install chromium chromium-driver"
fi
