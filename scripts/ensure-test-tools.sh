#!/usr/bin/env bash
# Tools the tests build their images from: a static busybox (the tiny HTTP app in FROM scratch)
# and debootstrap (a Debian + Python base image for builds, made once per machine); the
# browser the console's end-to-end test drives (Chromium and its driver); a Docker registry
# on loopback (images pulled for one organization only).
set -euo pipefail
missing=()
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A real OpenID Connect provider (npm oidc-provider, pinned by its lock file) for the sign-in tests.
if [ ! -d tests/oidc_provider/node_modules/oidc-provider ]; then
  command -v npm >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
  npm ci --prefix tests/oidc_provider --no-audit --no-fund --loglevel=error
fi
