#!/usr/bin/env bash
# The agent's /dev/tpmrm0 path in the QEMU guest of /work/shared/vm: builds dist/keylime-agent
# (unless --no-build), then runs test/vm-agent-e2e.ts (control plane on the host, agent in the
# guest). Exit 0 pass, 77 skipped (no QEMU / harness cache), 1 fail. CI may skip it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUN="${BUN:-$(pwd)/node_modules/.bin/bun}"
if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "[vm-agent-e2e] SKIP: qemu-system-x86_64 is not installed"; exit 77
fi
[ "${1:-}" = "--no-build" ] || bash scripts/build-agent.sh >/dev/null
exec "$BUN" test/vm-agent-e2e.ts
