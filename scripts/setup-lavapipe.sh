#!/usr/bin/env bash
# Installs Mesa's software Vulkan driver (lavapipe) from Debian bookworm-backports, so that the webgpu backend
# (Dawn, through the npm package `webgpu`) finds an adapter on a machine with no GPU. Bookworm's own
# mesa-vulkan-drivers (22.3) is too old for Dawn; backports' (25.x) works. Idempotent; needs root (or sudo).
# On a machine with a GPU, install that GPU's Vulkan driver instead; nothing here is needed.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
  echo "setup-lavapipe: needs root (or sudo) to install Debian packages" >&2
  exit 1
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != "bookworm" ]; then
  echo "setup-lavapipe: written for Debian bookworm; this is ${PRETTY_NAME:-unknown}. Install Mesa >= 24 (mesa-vulkan-drivers) by hand." >&2
  exit 1
fi

list=/etc/apt/sources.list.d/bookworm-backports.sources
if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  cat >"$list" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

installed=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
case "$installed" in
  2[4-9].*|[3-9][0-9].*) echo "setup-lavapipe: mesa-vulkan-drivers $installed already installed" ;;
  *)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
    echo "setup-lavapipe: installed mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
    ;;
esac
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null
