#!/usr/bin/env bash
# The agent's /dev/tpmrm0 path in the QEMU guest of /work/shared/vm: builds dist/keylime-agent
# (unless --no-build), then runs test/vm-agent-e2e.ts (pull mode) or, with --push,
# test/vm-push-agent-e2e.ts (push mode); control plane on the host, agent in the guest.
# Exit 0 pass, 77 skipped (no QEMU / harness cache), 1 fail. CI may skip it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN="${BUN:-$(pwd)/node_modules/.bin/bun}"
build=1
test=test/vm-agent-e2e.ts
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --push) test=test/vm-push-agent-e2e.ts ;;
    *) echo "usage: $0 [--push] [--no-build]" >&2; exit 2 ;;
  esac
done
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "[vm-agent-e2e] SKIP: qemu-system-x86_64 is not installed"; exit 77
fi
[ "$build" = 0 ] || bash scripts/build-agent.sh >/dev/null
exec "$BUN" "$test"
