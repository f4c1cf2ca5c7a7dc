#!/usr/bin/env bash
# Debian's Chromium (and an emoji font, so screenshots show 👍/👎) for the real-browser tests.
set -eu
have_font() { fc-list 2>/dev/null | grep -qi "emoji"; }
if command -v chromium >/dev/null 2>&1 && have_font; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium, chromium-driver and fonts-noto-color-emoji for the browser tests…"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
    fonts-noto-color-emoji >/dev/null
else
  echo "chromium or an emoji font is missing: browser tests skip unless you run" \
       "sudo apt-get install chromium chromium-driver fonts-noto-color-emoji"
fi
