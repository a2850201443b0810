#!/usr/bin/env bash
# `npm start`: installs dependencies on first use, then runs the control plane from the sources
# (`keylime [--verifier] [--registrar]`). Data goes to KEYLIME_DIR (default /var/lib/keylime).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/bun ] || npm ci --no-audit --no-fund >&2
exec node_modules/.bin/bun src/main.ts "$@"
