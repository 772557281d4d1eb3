#!/usr/bin/env bash
# Makes sure `python3 -m venv` works (a bare Debian lacks python3-venv).
set -euo pipefail
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi
