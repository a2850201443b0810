#!/usr/bin/env bash
# End-to-end test of the OCI image the way MicroOS users run it (docs/container.md):
#
#   podman build --build-arg BASE=… .   nothing but BASE (no build-stage image left behind); a
#                                        context without node_modules fails naming it
#   podman container runlabel install IMAGE          (twice: idempotent)
#   podman container runlabel run IMAGE              read-only, no capabilities, health check
#   podman healthcheck run keylime-control-plane-container
#   curl --cacert cacert.crt (+ client cert) https://127.0.0.1|localhost|<configured name>:8881, :8891
#   bench/fleet/run.ts registers simulated agents with 127.0.0.1:8890
#   podman run --rm --network host -v keylime-control-plane-volume:/var/lib/keylime/ IMAGE \
#     keylime_tenant -v 127.0.0.1 -r 127.0.0.1 --cert default -c reglist   → those agents
#   the same with -e KEYLIME_TENANT_VERIFIER_IP/REGISTRAR_IP instead of -v/-r (podman bridge)
#   keylime-policy create runtime as --user 0 over a read-only host tree (and its warning without)
#   keylime_tenant -c addruntimepolicy --runtime-policy /tmp/policy.json from a bind mount
#   podman restart, podman rm -f / podman kill + runlabel run again → same agents, same CA, and the
#   old cacert and client cert still validate the new server under its configured names
#   podman logs, podman top / exec id -u (non-root), runlabel uninstall
#   compose.yaml with PostgreSQL (podman-compose or `podman compose`): the same checks, and the
#   health check turning unhealthy while PostgreSQL is stopped and healthy again after
#
# The seed's `-v 10.88.0.1 -r 10.88.0.1` becomes `--network host -v 127.0.0.1 -r 127.0.0.1` and the
# RUN label publishes on 127.0.0.1 only (OPT1=127.0.0.1:): no traffic leaves the host.
#
# Environment:
#   KEYLIME_IMAGE           image tag (default localhost/keylime-control-plane:latest)
#   KEYLIME_BASE            base (default localhost/debian-base:bookworm, built by
#                           ../shared/podman/base-image.sh when missing)
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

for tool in curl openssl; do command -v "$tool" >/dev/null || skip "$tool is not installed"; done
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
# Nothing but BASE: no BUILDER image, no build stage. The images a build leaves are the layer
# cache of the final image (not dangling); only the image this tag pointed to before may dangle.
dangling() { podman images -a -q --no-trunc --filter dangling=true | sed "s/^sha256://" | sort; }
dangling_before=$(dangling)
old_id=$(podman image inspect "$IMAGE" --format '{{.Id}}' 2>/dev/null || true)
t=$(date +%s%N)
podman build -q --build-arg "BASE=$BASE" -t "$IMAGE" . >"$work/build.log" 2>&1 \
  || { tail -n 30 "$work/build.log" >&2; fail "podman build failed"; }
build_ms=$(ms_since "$t")
new_id=$(podman image inspect "$IMAGE" --format '{{.Id}}')
left=$(comm -13 <(echo "$dangling_before") <(dangling) | grep -vx "${old_id:-none}" || true)
[ -z "$left" ] || { podman images -a >&2; fail "the build left dangling images: $left"; }
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ] && dangling | grep -qx "$old_id"; then
  podman rmi "$old_id" >/dev/null 2>&1 || true  # this test's previous build of the tag
fi
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
log "built $IMAGE in $build_ms ms (layer cache used when present): $((size / 1048576)) MiB on $BASE, no dangling image left"
[ "$(podman image inspect "$IMAGE" --format '{{.Config.User}}')" != "" ] || fail "image has no USER"

# Without node_modules (no `npm ci`) the build fails and says which file is missing.
mkdir "$work/ctx"
cp -r Containerfile .containerignore package.json package-lock.json tsconfig.json migrations scripts src "$work/ctx/"
if podman build --layers=false --force-rm --build-arg "BASE=$BASE" "$work/ctx" >"$work/nonm.log" 2>&1; then
  fail "podman build without node_modules succeeded"
fi
grep -q 'node_modules/.bin/bun: no such file or directory' "$work/nonm.log" \
  || { tail -n 10 "$work/nonm.log" >&2; fail "build without node_modules does not name node_modules/.bin/bun"; }
log "build without node_modules fails: $(grep -o 'stat [^"]*node_modules/.bin/bun: no such file or directory' "$work/nonm.log" | head -n1)"

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
  local dir=$1 port out code
  for port in 8881 8891; do
    out=$(curl -fsS --max-time 10 --cacert "$dir/cacert.crt" --cert "$dir/client-cert.crt" \
      --key "$dir/client-private.pem" "https://127.0.0.1:$port/version") \
      || fail "mTLS GET https://127.0.0.1:$port/version failed"
    grep -q '"current_version"' <<<"$out" || fail "unexpected /version answer on $port: $out"
    # Without a certificate (upstream 7.14): public actions answer, admin actions are 403.
    curl -fsS -o /dev/null --max-time 10 --cacert "$dir/cacert.crt" "https://127.0.0.1:$port/version" \
      || fail "port $port refused /version (public) to a client without a certificate"
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$dir/cacert.crt" \
      "https://127.0.0.1:$port/v2.6/agents")
    [[ $code == 403 ]] || fail "port $port answered $code to a client without a certificate on /v2.6/agents (want 403)"
  done
  log "mTLS ok on 8881 and 8891 (cacert from podman cp; without a certificate: /version 200, /v2.6/agents 403)"
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

# tenant_reglist VOLUME EXPECTED [PODMAN-RUN-OPTION…] [-- TENANT-ARG…]: the seed's tenant line
# (default: host network, -v/-r 127.0.0.1) must list exactly EXPECTED
tenant_reglist() {
  local vol=$1 expected=$2 out rc=0 opts=() args=()
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  [ $# -gt 0 ] && shift && args=("$@")
  [ "${#opts[@]}" -gt 0 ] || opts=(--network host)
  [ "${#args[@]}" -gt 0 ] || args=(-v 127.0.0.1 -r 127.0.0.1)
  out=$(podman run --rm "${opts[@]}" -v "$vol:/var/lib/keylime/" "$IMAGE" \
    keylime_tenant "${args[@]}" --cert default -c reglist 2>&1) || rc=$?
  [ "$rc" = 0 ] || { echo "$out" >&2; fail "keylime_tenant -c reglist (${opts[*]}) exited $rc"; }
  got=$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' <<<"$out" | sort)
  [ "$got" = "$expected" ] || { echo "$out" >&2; fail "reglist shows other agents than registered"; }
  log "keylime_tenant -c reglist (from the image, volume $vol, ${opts[*]}) lists the $(wc -l <<<"$expected") agents"
}

# health CONTAINER: `podman healthcheck run` once; prints healthy (exit 0; podman 4.3 prints
# nothing then) or unhealthy
health() { if podman healthcheck run "$1" >/dev/null 2>&1; then echo healthy; else echo unhealthy; fi; }

# wait_health CONTAINER WANT SECONDS: runs the health check (at most once a second) until it
# reports WANT; fails after SECONDS
wait_health() {
  local ctr=$1 want=$2 secs=$3 t0 got=
  t0=$(date +%s)
  while [ $(($(date +%s) - t0)) -le "$secs" ]; do
    got=$(health "$ctr")
    [ "$got" = "$want" ] && return 0
    sleep 1
  done
  podman logs "$ctr" 2>&1 | tail -n 10 >&2
  fail "$ctr: health check says '${got:-nothing}', not $want, after $secs s"
}

# check_hardened CONTAINER: read-only root, no capabilities, no-new-privileges, a health check
check_hardened() {
  local ctr=$1 ro caps sec hc
  ro=$(podman inspect "$ctr" --format '{{.HostConfig.ReadonlyRootfs}}')
  caps=$(podman inspect "$ctr" --format '{{.EffectiveCaps}}')
  sec=$(podman inspect "$ctr" --format '{{.HostConfig.SecurityOpt}}')
  hc=$(podman inspect "$ctr" --format '{{.Config.Healthcheck.Test}}')
  [ "$ro" = true ] || fail "$ctr: root file system not read-only"
  [ "$caps" = '[]' ] || fail "$ctr: capabilities $caps"
  grep -q no-new-privileges <<<"$sec" || fail "$ctr: no no-new-privileges ($sec)"
  grep -q "keylime.*health" <<<"$hc" || fail "$ctr: health check is '$hc'"
  log "$ctr: read-only root, capabilities $caps, $sec, health check $hc"
}

# check_names DIR CONTAINER NAME…: the server answers under each NAME (resolved to 127.0.0.1) with
# the CA and client certificate in DIR, and its certificate does not name the container
check_names() {
  local dir=$1 ctr=$2 name port host sans
  shift 2
  for name in "$@"; do
    for port in 8881 8891; do
      curl -fsS -o /dev/null --max-time 10 --resolve "$name:$port:127.0.0.1" --cacert "$dir/cacert.crt" \
        --cert "$dir/client-cert.crt" --key "$dir/client-private.pem" "https://$name:$port/version" \
        || fail "https://$name:$port/version does not validate with the CA and client cert of $dir"
    done
  done
  podman cp "$ctr:/var/lib/keylime/cv_ca/server-cert.crt" "$work/server-cert.crt"
  sans=$(openssl x509 -in "$work/server-cert.crt" -noout -ext subjectAltName | tail -n +2 | tr -d ' ')
  host=$(podman inspect "$ctr" --format '{{.Config.Hostname}}')
  ! grep -qi "DNS:$host" <<<"$sans" || fail "server certificate names the container ($host): $sans"
  log "server certificate $sans validates as $* (not the container's host name $host)"
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

# the configured names go into the server certificate at first start (-e NAME passes them through)
SANS=kl-e2e.example,192.0.2.10
t=$(date +%s%N)
KEYLIME_VERIFIER_CERT_SUBJECT_ALTERNATIVE_NAMES=$SANS OPT1=127.0.0.1: \
  podman container runlabel run "$IMAGE" >/dev/null 2>"$work/run.err" || { cat "$work/run.err" >&2; fail "runlabel run failed"; }
podman container exists "$CTR" || fail "runlabel run did not create $CTR"
wait_ready "$CTR" >/dev/null
first_ms=$(ms_since "$t")
log "runlabel run: $CTR serving after $first_ms ms (first start: creates cv_ca and the PGlite database)"
check_hardened "$CTR"
wait_health "$CTR" healthy 30
log "podman healthcheck run $CTR: healthy"

copy_ca "$CTR" "$work/ca"
check_mtls "$work/ca"
check_names "$work/ca" "$CTR" localhost kl-e2e.example
check_non_root "$CTR"

register_agents "$work/ca" 3
expected=$(registrar_uuids "$work/ca")
[ "$(wc -l <<<"$expected")" = 3 ] || fail "registrar lists $(wc -l <<<"$expected") agents, expected 3"
log "fleet simulator registered 3 agents with 127.0.0.1:8890"
tenant_reglist "$VOL" "$expected"
# Configuration by environment: on podman's bridge the tenant reaches the control plane's own
# address; KEYLIME_TENANT_* replaces -v/-r (and would replace tenant.conf).
ctr_ip=$(podman inspect "$CTR" --format '{{.NetworkSettings.IPAddress}}')
tenant_reglist "$VOL" "$expected" -e "KEYLIME_TENANT_VERIFIER_IP=$ctr_ip" -e "KEYLIME_TENANT_REGISTRAR_IP=$ctr_ip" -- -c reglist

# The policy tool over a host tree mounted read-only: as root it reads root-only files; as the
# image's user it says what it could not read. (/etc stands in for `-v /:/rootfs:ro`.)
podman run --rm --user 0 -v /etc:/rootfs/etc:ro "$IMAGE" keylime-policy create runtime --rootfs /rootfs \
  >"$work/policy.json" 2>"$work/policy.err" || { cat "$work/policy.err" >&2; fail "keylime-policy create runtime --user 0 failed"; }
grep -q '"/etc/shadow"' "$work/policy.json" || fail "policy made as root lacks /etc/shadow"
! grep -q warning "$work/policy.err" || { cat "$work/policy.err" >&2; fail "policy tool as root warned"; }
podman run --rm -v /etc:/rootfs/etc:ro "$IMAGE" keylime-policy create runtime --rootfs /rootfs \
  >/dev/null 2>"$work/policy-user.err" || fail "keylime-policy create runtime as uid 490 failed"
grep -q 'could not be read (EACCES).*/rootfs/etc/shadow' "$work/policy-user.err" \
  || { cat "$work/policy-user.err" >&2; fail "policy tool as uid 490 does not warn about /etc/shadow"; }
log "keylime-policy create runtime --rootfs: --user 0 includes /etc/shadow; uid 490 warns: $(grep -o '[0-9]* paths* under' "$work/policy-user.err")"

# A file for the tenant: bind-mounted read-only, readable by uid 490.
chmod 644 "$work/policy.json"
out=$(podman run --rm --network host -v "$VOL:/var/lib/keylime/" -v "$work/policy.json:/tmp/policy.json:ro,Z" \
  "$IMAGE" keylime_tenant -c addruntimepolicy --runtime-policy-name e2e --runtime-policy /tmp/policy.json 2>&1) \
  || { echo "$out" >&2; fail "keylime_tenant -c addruntimepolicy with a bind-mounted policy failed"; }
out=$(podman run --rm --network host -v "$VOL:/var/lib/keylime/" "$IMAGE" \
  keylime_tenant -c showruntimepolicy --runtime-policy-name e2e 2>&1) || { echo "$out" >&2; fail "showruntimepolicy failed"; }
grep -q '/etc/shadow' <<<"$out" || { echo "$out" | head -c 2000 >&2; fail "showruntimepolicy lacks the uploaded policy"; }
log "keylime_tenant -c addruntimepolicy --runtime-policy /tmp/policy.json (bind mount, ro) uploaded it"

t=$(date +%s%N)
podman restart -t 10 "$CTR" >/dev/null 2>&1 || fail "podman restart failed"
restart_ms=$(wait_ready "$CTR")
log "podman restart: serving again after $(ms_since "$t") ms"
[ "$(registrar_uuids "$work/ca")" = "$expected" ] || fail "agents lost across podman restart"
tenant_reglist "$VOL" "$expected"

# Re-created container (new id and host name, same volume, no SAN variable this time): the old
# cacert and client certificate still validate it under the configured names.
podman rm -f "$CTR" >/dev/null 2>&1 || fail "podman rm -f failed"
OPT1=127.0.0.1: podman container runlabel run "$IMAGE" >/dev/null 2>"$work/run.err" || { cat "$work/run.err" >&2; fail "runlabel run after rm failed"; }
wait_ready "$CTR" >/dev/null
check_mtls "$work/ca"
check_names "$work/ca" "$CTR" localhost kl-e2e.example
log "podman rm -f, runlabel run again: the old cacert and client cert validate the new container"

podman kill "$CTR" >/dev/null || fail "podman kill failed"
[ "$(podman inspect "$CTR" --format '{{.State.Running}}')" = false ] || fail "$CTR still running after podman kill"
t=$(date +%s%N)
OPT1=127.0.0.1: podman container runlabel run "$IMAGE" >/dev/null 2>"$work/run.err" || { cat "$work/run.err" >&2; fail "runlabel run after kill failed"; }
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
podman container runlabel uninstall "$IMAGE" >/dev/null 2>&1 || fail "runlabel uninstall failed"
! podman container exists "$CTR" || fail "runlabel uninstall left $CTR"
podman volume exists "$VOL" || fail "runlabel uninstall removed the data volume"
podman volume rm "$VOL" >/dev/null
log "runlabel uninstall removed the container and kept $VOL"
log "figures: image $((size / 1048576)) MiB; build $build_ms ms; first start $first_ms ms; restart $restart_ms ms"

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
check_hardened "$cp_ctr"

# The health check follows the database: unhealthy while PostgreSQL is stopped, healthy after.
wait_health "$cp_ctr" healthy 30
pg_ctr=$(podman ps --filter label=com.docker.compose.project=keylime \
  --filter label=com.docker.compose.service=postgres --format '{{.Names}}' | head -n1)
[ -n "$pg_ctr" ] || fail "compose started no postgres container"
podman stop -t 10 "$pg_ctr" >/dev/null 2>&1 || fail "podman stop $pg_ctr failed"
t=$(date +%s%N)
wait_health "$cp_ctr" unhealthy 30
down_ms=$(ms_since "$t")
# podman counts failures towards --health-retries only after the start period (60 s); the
# check's own verdict is what this test asserts
status=$(podman inspect "$cp_ctr" --format '{{.State.Health.Status}}/{{.State.Health.FailingStreak}}')
podman start "$pg_ctr" >/dev/null 2>&1 || fail "podman start $pg_ctr failed"
t=$(date +%s%N)
wait_health "$cp_ctr" healthy 90
log "health check: healthy; PostgreSQL stopped → unhealthy after $down_ms ms (status/streak $status); started → healthy after $(ms_since "$t") ms"
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
