#!/usr/bin/env bash
# `npm start`: installs dependencies on first use, then runs the control plane from the sources
# (`keylime [--verifier] [--registrar]`). Data goes to KEYLIME_DIR (default /var/lib/keylime).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/bun ] || bash scripts/install-deps.sh
exec node_modules/.bin/bun src/main.ts "$@"
