#!/usr/bin/env bash
# Installs the npm dependencies (Bun itself is one: the `bun` package). `npm ci` first; when the
# registry mirror lacks some platform-specific optional packages (e.g. @biomejs/cli-darwin-*),
# npm ci's strict lock check refuses, and `npm install` — which tolerates missing optional
# packages — installs the same pinned versions.
set -uo pipefail
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund >/dev/null 2>&1 && exit 0
npm install --no-audit --no-fund >/dev/null 2>&1 && exit 0
echo "npm install failed; run 'npm install' to see why" >&2
exit 1
