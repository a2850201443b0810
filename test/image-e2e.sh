#!/usr/bin/env bash
# End-to-end test of the OCI image the way MicroOS users run it (docs/container.md):
#
#   podman container runlabel install IMAGE          (twice: idempotent)
#   podman container runlabel run IMAGE
#   curl --cacert cacert.crt (+ client cert) https://127.0.0.1:8881/version, :8891/version
#   bench/fleet/run.ts registers simulated agents with 127.0.0.1:8890
#   podman run --rm --network host -v keylime-control-plane-volume:/var/lib/keylime/ IMAGE \
#     keylime_tenant -v 127.0.0.1 -r 127.0.0.1 --cert default -c reglist   → those agents
#   podman restart, podman kill + runlabel run again → same agents (volume persistence)
#   podman logs, podman top / exec id -u (non-root), podman kill, runlabel uninstall
#   compose.yaml with PostgreSQL (podman-compose or `podman compose`): the same checks
#
# The seed's `-v 10.88.0.1 -r 10.88.0.1` becomes `--network host -v 127.0.0.1 -r 127.0.0.1` and the
# RUN label publishes on 127.0.0.1 only (OPT1=127.0.0.1:): no traffic leaves the loopback.
#
# Environment:
#   KEYLIME_IMAGE           image tag (default localhost/keylime-control-plane:latest)
#   KEYLIME_BASE            runtime base (default localhost/debian-base:bookworm, built by
#                           ../shared/podman/base-image.sh when missing); KEYLIME_BUILDER likewise
#   KEYLIME_POSTGRES_IMAGE  PostgreSQL image for compose (default localhost/keylime-postgres:15,
#                           built by scripts/postgres-image.sh when missing)
#   KEYLIME_IMAGE_E2E_COMPOSE=0   skip the compose part
#   KEYLIME_IMAGE_E2E_REPLACE=1   allow removing an existing keylime-control-plane-container/volume
#   KEYLIME_IMAGE_E2E_RMI=1       remove the image at the end
#
# Exit status: 0 passed, 1 failed, 77 skipped (reason printed: no podman and no way to set it up).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

IMAGE=${KEYLIME_IMAGE:-localhost/keylime-control-plane:latest}
BASE=${KEYLIME_BASE:-localhost/debian-base:bookworm}
BUILDER=${KEYLIME_BUILDER:-$BASE}
PG_IMAGE=${KEYLIME_POSTGRES_IMAGE:-localhost/keylime-postgres:15}
CTR=keylime-control-plane-container
VOL=keylime-control-plane-volume
COMPOSE_VOLS=(keylime-compose-data keylime-postgres)
SHARED_PODMAN=${KEYLIME_SHARED_PODMAN:-$repo/../shared/podman}
BUN=$repo/node_modules/.bin/bun

log() { printf '[image-e2e] %s\n' "$*"; }
fail() {
  printf '[image-e2e] FAIL: %s\n' "$*" >&2
  exit 1
}
skip() {
  printf '[image-e2e] SKIP: %s\n' "$*"
  exit 77
}
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ---- podman ------------------------------------------------------------------------------------
if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
  if [ "$(id -u)" = 0 ] && [ -x "$SHARED_PODMAN/setup.sh" ]; then
    log "setting podman up ($SHARED_PODMAN/setup.sh)"
    bash "$SHARED_PODMAN/setup.sh" >/dev/null || skip "podman setup failed"
  else
    skip "podman is not installed (and $SHARED_PODMAN/setup.sh cannot run as $(id -un))"
  fi
elif [ "$(id -u)" = 0 ] && [ -f "$SHARED_PODMAN/containers.conf" ] && [ ! -f /etc/containers/containers.conf ]; then
  bash "$SHARED_PODMAN/setup.sh" >/dev/null
fi
podman info >/dev/null 2>&1 || skip "podman is installed but does not work here (podman info fails)"
log "$(podman --version)"

for tool in curl; do command -v "$tool" >/dev/null || skip "$tool is not installed"; done
[ -x "$BUN" ] || bash scripts/install-deps.sh || fail "npm dependencies missing (scripts/install-deps.sh)"

# The labels use fixed names and host ports: never clobber someone's installation silently.
if [ "${KEYLIME_IMAGE_E2E_REPLACE:-}" != 1 ]; then
  for what in "container $CTR" "volume $VOL"; do
    # shellcheck disable=SC2086
    if podman $what exists 2>/dev/null; then
      fail "$what already exists; remove it or set KEYLIME_IMAGE_E2E_REPLACE=1"
    fi
  done
fi
for port in 8881 8890 8891; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    podman container exists "$CTR" || fail "port $port on 127.0.0.1 is in use; the image's labels publish 8881/8890/8891"
  fi
done

work=$(mktemp -d)
compose_cmd=()
cleanup() {
  local rc=$?
  set +e
  if [ "${#compose_cmd[@]}" -gt 0 ]; then
    (cd "$repo" && "${compose_cmd[@]}" down -v >/dev/null 2>&1)
  fi
  podman rm -f --ignore "$CTR" >/dev/null 2>&1
  podman volume rm -f "$VOL" "${COMPOSE_VOLS[@]}" >/dev/null 2>&1
  # the build stage's images (about 670 MiB each build); the final image is kept
  podman image prune -f --filter label=io.keylime-ts.stage=build >/dev/null 2>&1
  [ "${KEYLIME_IMAGE_E2E_RMI:-}" = 1 ] && podman rmi -f "$IMAGE" >/dev/null 2>&1
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
podman rm -f --ignore "$CTR" >/dev/null
podman volume rm -f "$VOL" >/dev/null 2>&1 || true

# ---- build -------------------------------------------------------------------------------------
if ! podman image exists "$BASE"; then
  if [[ $BASE == localhost/debian-base:* ]]; then
    log "building $BASE ($SHARED_PODMAN/base-image.sh)"
    bash "$SHARED_PODMAN/base-image.sh" "$BASE" >/dev/null || fail "could not build $BASE"
  else
    podman pull -q "$BASE" >/dev/null || fail "cannot pull $BASE (set KEYLIME_BASE to a local image)"
  fi
fi
t=$(date +%s%N)
podman build -q --build-arg "BASE=$BASE" --build-arg "BUILDER=$BUILDER" -t "$IMAGE" . >"$work/build.log" 2>&1 \
  || { tail -n 30 "$work/build.log" >&2; fail "podman build failed"; }
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
log "built $IMAGE in $(ms_since "$t") ms (build cache used when present): $((size / 1048576)) MiB on $BASE"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" != "" ] || fail "image has no USER"

# ---- helpers -----------------------------------------------------------------------------------
# wait_ready CONTAINER: until the registrar answers on 127.0.0.1:8890 (60 s); prints ms waited
wait_ready() {
  local ctr=$1 t0 i
  t0=$(date +%s%N)
  for i in $(seq 1 600); do
    if curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:8890/version 2>/dev/null; then
      ms_since "$t0"
      return 0
    fi
    if [ "$(podman inspect "$ctr" --format '{{.State.Running}}' 2>/dev/null)" = false ] && [ "$i" -gt 20 ]; then
      podman logs "$ctr" 2>&1 | tail -n 20 >&2
      fail "$ctr stopped before serving"
    fi
    sleep 0.1
  done
  podman logs "$ctr" 2>&1 | tail -n 20 >&2
  fail "$ctr did not serve 127.0.0.1:8890 within 60 s"
}

# copy_ca CONTAINER DIR: cacert.crt (as the seed line) plus the client pair for the mTLS checks
copy_ca() {
  local ctr=$1 dir=$2 f
  mkdir -p "$dir"
  for f in cacert.crt client-cert.crt client-private.pem; do
    podman cp "$ctr:/var/lib/keylime/cv_ca/$f" "$dir/$f" || fail "podman cp $ctr:/var/lib/keylime/cv_ca/$f"
  done
}

# check_mtls DIR: verifier and registrar admin API over mTLS, host name checked against the SANs
check_mtls() {
  local dir=$1 port out
  for port in 8881 8891; do
    out=$(curl -fsS --max-time 10 --cacert "$dir/cacert.crt" --cert "$dir/client-cert.crt" \
      --key "$dir/client-private.pem" "https://127.0.0.1:$port/version") \
      || fail "mTLS GET https://127.0.0.1:$port/version failed"
    grep -q '"current_version"' <<<"$out" || fail "unexpected /version answer on $port: $out"
    if curl -fsS -o /dev/null --max-time 10 --cacert "$dir/cacert.crt" "https://127.0.0.1:$port/version" 2>/dev/null; then
      fail "port $port answered a client without a certificate (mTLS not enforced)"
    fi
  done
  log "mTLS ok on 8881 and 8891 (cacert from podman cp; a client without a certificate is refused)"
}

# register_agents DIR N: simulated agents register with 127.0.0.1:8890; prints their sorted uuids
# (as the registrar admin API lists them)
register_agents() {
  local dir=$1 n=$2
  "$BUN" bench/fleet/run.ts --count "$n" --registrar 127.0.0.1:8890 --ca-dir "$dir" --duration 0 \
    >"$work/fleet.log" 2>&1 || { cat "$work/fleet.log" >&2; fail "fleet simulator failed"; }
  grep -q "registered $n/$n" "$work/fleet.log" || { cat "$work/fleet.log" >&2; fail "not all $n agents registered"; }
}

# registrar_uuids DIR: uuids from GET /v2.6/agents/ on 8891 (mTLS), sorted, one per line
registrar_uuids() {
  local dir=$1
  curl -fsS --max-time 10 --cacert "$dir/cacert.crt" --cert "$dir/client-cert.crt" \
    --key "$dir/client-private.pem" https://127.0.0.1:8891/v2.6/agents/ \
    | grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' | sort
}

# tenant_reglist VOLUME EXPECTED: the seed's tenant line (host network) must list exactly EXPECTED
tenant_reglist() {
  local vol=$1 expected=$2 out rc=0
  out=$(podman run --rm --network host -v "$vol:/var/lib/keylime/" "$IMAGE" \
    keylime_tenant -v 127.0.0.1 -r 127.0.0.1 --cert default -c reglist 2>&1) || rc=$?
  if [ "$rc" = 69 ]; then
    log "SKIP reglist check: keylime_tenant is not available yet in this build (exit 69)"
    return 0
  fi
  [ "$rc" = 0 ] || { echo "$out" >&2; fail "keylime_tenant -c reglist exited $rc"; }
  got=$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' <<<"$out" | sort)
  [ "$got" = "$expected" ] || { echo "$out" >&2; fail "reglist shows other agents than registered"; }
  log "keylime_tenant -c reglist (from the image, volume $vol) lists the $(wc -l <<<"$expected") agents"
}

check_non_root() {
  local ctr=$1 uid user
  # id(1) may be missing from a minimal base; podman top's huser is the same uid (rootful podman)
  uid=$(podman exec "$ctr" id -u 2>/dev/null) || uid=$(podman top "$ctr" huser | sed -n 2p | tr -d ' ')
  user=$(podman top "$ctr" user | tail -n +2 | sort -u | tr -d ' ')
  [ "$uid" != 0 ] && [ -n "$user" ] && [ "$user" != root ] || fail "$ctr runs as uid $uid / user $user"
  log "runs as non-root: podman exec id -u = $uid, podman top user = $user"
}

# ---- runlabels ---------------------------------------------------------------------------------
podman container runlabel install "$IMAGE" >/dev/null || fail "runlabel install failed"
podman container runlabel install "$IMAGE" >/dev/null || fail "runlabel install is not idempotent"
podman volume exists "$VOL" || fail "runlabel install did not create $VOL"
log "runlabel install (twice) created $VOL"

t=$(date +%s%N)
OPT1=127.0.0.1: podman container runlabel run "$IMAGE" >/dev/null || fail "runlabel run failed"
podman container exists "$CTR" || fail "runlabel run did not create $CTR"
wait_ready "$CTR" >/dev/null
first_ms=$(ms_since "$t")
log "runlabel run: $CTR serving after $first_ms ms (first start: creates cv_ca and the PGlite database)"

copy_ca "$CTR" "$work/ca"
check_mtls "$work/ca"
check_non_root "$CTR"

register_agents "$work/ca" 3
expected=$(registrar_uuids "$work/ca")
[ "$(wc -l <<<"$expected")" = 3 ] || fail "registrar lists $(wc -l <<<"$expected") agents, expected 3"
log "fleet simulator registered 3 agents with 127.0.0.1:8890"
tenant_reglist "$VOL" "$expected"

t=$(date +%s%N)
podman restart -t 10 "$CTR" >/dev/null || fail "podman restart failed"
restart_ms=$(wait_ready "$CTR")
log "podman restart: serving again after $(ms_since "$t") ms"
[ "$(registrar_uuids "$work/ca")" = "$expected" ] || fail "agents lost across podman restart"
tenant_reglist "$VOL" "$expected"

podman kill "$CTR" >/dev/null || fail "podman kill failed"
[ "$(podman inspect "$CTR" --format '{{.State.Running}}')" = false ] || fail "$CTR still running after podman kill"
t=$(date +%s%N)
OPT1=127.0.0.1: podman container runlabel run "$IMAGE" >/dev/null || fail "runlabel run after kill failed"
wait_ready "$CTR" >/dev/null
log "podman kill, runlabel run again (new container, same volume): serving after $(ms_since "$t") ms"
copy_ca "$CTR" "$work/ca2"
cmp -s "$work/ca/cacert.crt" "$work/ca2/cacert.crt" || fail "cv_ca changed across container re-creation"
tenant_reglist "$VOL" "$expected"

logs=$(podman logs "$CTR" 2>&1)
grep -q 'keylime control plane started' <<<"$logs" || fail "podman logs lacks the start-up line"
grep -q 'verifier listening url=https://0.0.0.0:8881' <<<"$logs" || fail "verifier does not listen on all addresses"
log "podman logs shows the start-up lines"

podman kill "$CTR" >/dev/null
podman container runlabel uninstall "$IMAGE" >/dev/null || fail "runlabel uninstall failed"
! podman container exists "$CTR" || fail "runlabel uninstall left $CTR"
podman volume exists "$VOL" || fail "runlabel uninstall removed the data volume"
podman volume rm "$VOL" >/dev/null
log "runlabel uninstall removed the container and kept $VOL"
log "figures: image $((size / 1048576)) MiB; first start $first_ms ms; restart $restart_ms ms"

# ---- compose with PostgreSQL -------------------------------------------------------------------
if [ "${KEYLIME_IMAGE_E2E_COMPOSE:-1}" = 0 ]; then
  log "compose part skipped (KEYLIME_IMAGE_E2E_COMPOSE=0)"
  log "PASS"
  exit 0
fi
# -p keylime: podman-compose 1.0.x ignores compose.yaml's top-level `name:`
if podman compose version >/dev/null 2>&1; then
  compose_cmd=(podman compose -p keylime)
elif command -v podman-compose >/dev/null; then
  compose_cmd=(podman-compose -p keylime)
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing podman-compose (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman-compose >/dev/null 2>&1 \
    && compose_cmd=(podman-compose -p keylime)
fi
if [ "${#compose_cmd[@]}" = 0 ]; then
  log "SKIP compose part: neither 'podman compose' nor podman-compose is available"
  log "PASS"
  exit 0
fi
if ! podman image exists "$PG_IMAGE"; then
  if [ "$PG_IMAGE" = localhost/keylime-postgres:15 ]; then
    bash scripts/postgres-image.sh "$PG_IMAGE" "$BASE" >/dev/null || fail "could not build $PG_IMAGE"
  else
    podman pull -q "$PG_IMAGE" >/dev/null || fail "cannot pull $PG_IMAGE"
  fi
fi
for v in "${COMPOSE_VOLS[@]}"; do
  if podman volume exists "$v" && [ "${KEYLIME_IMAGE_E2E_REPLACE:-}" != 1 ]; then
    compose_cmd=()
    fail "volume $v already exists; remove it or set KEYLIME_IMAGE_E2E_REPLACE=1"
  fi
done
export KEYLIME_IMAGE=$IMAGE KEYLIME_POSTGRES_IMAGE=$PG_IMAGE KEYLIME_PUBLISH_ADDRESS=127.0.0.1 \
  KEYLIME_DB_PASSWORD=e2e-$RANDOM$RANDOM
t=$(date +%s%N)
"${compose_cmd[@]}" up -d >"$work/compose.log" 2>&1 || { tail -n 30 "$work/compose.log" >&2; fail "${compose_cmd[*]} up failed"; }
cp_ctr=$(podman ps -a --filter label=com.docker.compose.project=keylime \
  --filter label=com.docker.compose.service=control-plane --format '{{.Names}}' | head -n1)
[ -n "$cp_ctr" ] || fail "compose started no control-plane container"
wait_ready "$cp_ctr" >/dev/null
log "${compose_cmd[*]} up: $cp_ctr serving after $(ms_since "$t") ms (PostgreSQL $PG_IMAGE)"
grep -q 'keylime.db - INFO - using PostgreSQL' <<<"$(podman logs "$cp_ctr" 2>&1)" \
  || { podman logs "$cp_ctr" 2>&1 | tail -n 20 >&2; fail "$cp_ctr does not use PostgreSQL"; }
if podman run --rm -v keylime-compose-data:/var/lib/keylime/ "$IMAGE" test -e /var/lib/keylime/pglite 2>/dev/null; then
  fail "compose control plane created an embedded PGlite database"
fi

copy_ca "$cp_ctr" "$work/cca"
check_mtls "$work/cca"
check_non_root "$cp_ctr"
register_agents "$work/cca" 2
expected=$(registrar_uuids "$work/cca")
[ "$(wc -l <<<"$expected")" = 2 ] || fail "compose registrar lists $(wc -l <<<"$expected") agents, expected 2"
tenant_reglist keylime-compose-data "$expected"

# Data in PostgreSQL survives re-creating the control-plane container.
podman rm -f "$cp_ctr" >/dev/null 2>&1  # podman 4.3 without systemd: healthcheck timer noise
"${compose_cmd[@]}" up -d >>"$work/compose.log" 2>&1 || fail "${compose_cmd[*]} up (again) failed"
cp_ctr=$(podman ps --filter label=com.docker.compose.project=keylime \
  --filter label=com.docker.compose.service=control-plane --format '{{.Names}}' | head -n1)
wait_ready "$cp_ctr" >/dev/null
[ "$(registrar_uuids "$work/cca")" = "$expected" ] || fail "agents lost when the compose control plane was re-created"
tenant_reglist keylime-compose-data "$expected"
log "compose: control-plane container re-created, agents still listed (PostgreSQL volume)"

"${compose_cmd[@]}" down -v >/dev/null 2>&1 || fail "${compose_cmd[*]} down -v failed"
compose_cmd=()
for v in "${COMPOSE_VOLS[@]}"; do ! podman volume exists "$v" || fail "compose down -v left volume $v"; done
log "PASS"
