#!/usr/bin/env bash
# Builds a PostgreSQL image from Debian's postgresql package, for hosts that reach no container
# registry (compose.yaml uses docker.io/library/postgres otherwise). It honours the official image's
# contract that compose.yaml relies on: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, data in
# /var/lib/postgresql/data (a volume), port 5432, pg_isready on PATH.
#
# Usage: scripts/postgres-image.sh [TAG] [BASE]
#   TAG  default localhost/keylime-postgres:15
#   BASE default localhost/debian-base:bookworm (../shared/podman/base-image.sh builds it)
# Idempotent: does nothing when TAG exists. The build runs apt-get with the host's network.
set -euo pipefail
tag=${1:-localhost/keylime-postgres:15}
base=${2:-localhost/debian-base:bookworm}
command -v podman >/dev/null || { echo "postgres-image: podman is not installed" >&2; exit 1; }
if podman image exists "$tag"; then
  echo "$tag exists"
  exit 0
fi
podman image exists "$base" || { echo "postgres-image: base image $base is missing" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT

cat >"$ctx/entrypoint.sh" <<'EOF'
#!/bin/sh
# Initialises $PGDATA on first start (user, password, database from POSTGRES_*), then runs postgres.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  [ -n "${POSTGRES_PASSWORD:-}" ] || { echo "POSTGRES_PASSWORD is required" >&2; exit 1; }
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    createdb -U "$user" "$db"
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "initialised $PGDATA (user $user, database $db)"
fi
exec postgres -D "$PGDATA"
EOF

cat >"$ctx/Containerfile" <<EOF
FROM $base
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null \\
 && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15 /etc/postgresql/15/main \\
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \\
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \\
 && chmod 0700 /var/lib/postgresql/data
COPY --chmod=0755 entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
CMD ["/usr/local/bin/postgres-entrypoint"]
LABEL org.opencontainers.image.title="keylime-postgres" \\
      org.opencontainers.image.description="PostgreSQL 15 from Debian bookworm, official-image env contract"
EOF

echo "building $tag from $base (Debian postgresql-15)"
podman build --network host -q -t "$tag" "$ctx" >/dev/null
echo "$tag built"
