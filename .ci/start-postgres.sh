#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster on loopback (installing it first if missing), creates the
# role the tests use, and exports VEIL_TEST_POSTGRES_URL so that the store suite and the
# PostgreSQL end-to-end test run. Source it as root: `source .ci/start-postgres.sh`.
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432

# A role that can create the scratch databases each test uses (and drops afterwards).
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'veil') THEN
    CREATE ROLE veil LOGIN CREATEDB PASSWORD 'veil-ci-only';
  END IF;
END $$;
SQL
export VEIL_TEST_POSTGRES_URL="postgres://veil:veil-ci-only@127.0.0.1:5432/postgres?sslmode=disable"
# How the crash harness restarts the server mid-round (CrashRecoveryTests).
export VEIL_TEST_POSTGRES_RESTART="pg_ctlcluster $version main restart -m fast"
echo "PostgreSQL $version on 127.0.0.1:5432; VEIL_TEST_POSTGRES_URL and VEIL_TEST_POSTGRES_RESTART set"
