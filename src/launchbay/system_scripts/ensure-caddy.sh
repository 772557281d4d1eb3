#!/usr/bin/env bash
# Installs Caddy (the edge proxy launchbay runs and drives through its admin API) and, for the
# tests, Pebble (a local ACME server). Idempotent; starts nothing: launchbay starts Caddy.
set -euo pipefail
missing=()
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
if [ "${1:-}" = "--with-pebble" ] && ! command -v pebble >/dev/null 2>&1; then
  missing+=(pebble)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
caddy version
