#!/usr/bin/env bash
# Tools the tests build their images from: a static busybox (the tiny HTTP app in FROM scratch)
# and debootstrap (a Debian + Python base image for builds, made once per machine).
set -euo pipefail
missing=()
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
