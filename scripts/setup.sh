#!/usr/bin/env bash
# One-time set-up on a fresh Debian 12 machine: system packages (Vulkan driver, Chromium) and npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "[setup] done"
