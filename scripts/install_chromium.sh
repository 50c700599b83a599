#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (chromium, chromium-driver) when either is
# missing. The admin's browser test drives them; without them it is skipped locally and fails
# with KOHERENT_REQUIRE_SERVICES=1 (CI). Needs root and apt-get (Debian, Ubuntu).
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install_chromium: chromium/chromedriver missing; install them as root with" >&2
  echo "  apt-get install chromium chromium-driver" >&2
  exit 1
fi
echo "install_chromium: installing chromium and chromium-driver"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
chromium --version
chromedriver --version
