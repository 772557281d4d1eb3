#!/usr/bin/env bash
# Installs and starts a local Docker engine, idempotently, without systemd.
set -euo pipefail

if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing the Docker engine..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  mkdir -p /var/log/launchbay
  # A larger address pool than the default (about 30 networks): launchbay makes one network
  # per environment. Only for a dockerd started here; an existing one keeps its own settings.
  nohup dockerd --default-address-pool base=10.213.0.0/16,size=24 \
    >/var/log/launchbay/dockerd.log 2>&1 &
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
docker info --format 'Docker {{.ServerVersion}} is up ({{.Driver}} storage)'
