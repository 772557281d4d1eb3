#!/usr/bin/env bash
# Installs and starts a local PostgreSQL for the test suite, idempotently, without systemd.
# Leaves a superuser role `launchbay` (password `launchbay`) listening on 127.0.0.1:5432.
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing PostgreSQL..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
  pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -qx online; then
  pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p 5432 >/dev/null
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'launchbay') THEN
    CREATE ROLE launchbay LOGIN SUPERUSER PASSWORD 'launchbay';
  END IF;
END $$;
SQL
echo "PostgreSQL $version is up on 127.0.0.1:5432"
