#!/usr/bin/env bash
# Tools the tests build their images from: a static busybox (the tiny HTTP app in FROM scratch).
set -euo pipefail
if ! dpkg -s busybox-static >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
fi
