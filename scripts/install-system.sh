#!/usr/bin/env bash
# Installs the system packages the engine needs on Debian 12 when they are missing:
# a Vulkan driver Dawn accepts (lavapipe from bookworm-backports), Chromium for the browser tests and nginx
# for the load-balancer test.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

have_lavapipe() {
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 &&
    dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qE '^(2[4-9]|[3-9][0-9])\.'
}
have_gpu_vulkan() {
  ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1
}

need_update=1
apt_update_once() {
  if [ "$need_update" = 1 ]; then $SUDO apt-get update -qq; need_update=0; fi
}

if ! have_lavapipe && ! have_gpu_vulkan; then
  echo "[setup] installing lavapipe (mesa-vulkan-drivers from bookworm-backports)"
  if [ -r /etc/os-release ] && grep -q 'VERSION_CODENAME=bookworm' /etc/os-release; then
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      $SUDO tee /etc/apt/sources.list.d/backports.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
fi

if [ "${BLIP2_SKIP_CHROMIUM:-0}" != "1" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "[setup] installing chromium (browser tests)"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  # The replica test (scripts/nginx-replicas.ts) runs its own nginx on loopback; the packaged service is not
  # needed, so it is stopped and disabled again where the package started it.
  echo "[setup] installing nginx (load-balancer test of blip2 serve replicas)"
  apt_update_once
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >/dev/null
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true
  elif [ -s /run/nginx.pid ]; then
    $SUDO /usr/sbin/nginx -s quit >/dev/null 2>&1 || true
  fi
fi
echo "[setup] system packages ready"
