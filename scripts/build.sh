#!/usr/bin/env bash
# Builds dist/keylime and its command symlinks (scripts/build.ts says how).
set -euo pipefail
cd "$(dirname "$0")/.."
BUN="${BUN:-$(pwd)/node_modules/.bin/bun}"
exec "$BUN" scripts/build.ts "$@"
