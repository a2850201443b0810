#!/usr/bin/env bash
# Installs the npm dependencies exactly as package-lock.json pins them (Bun itself is one: the
# `bun` package). `npm ci` only: it never rewrites the tracked lock file, and a lock file out of
# step with package.json is an error to fix in the repository, not something to paper over here.
set -uo pipefail
cd "$(dirname "$0")/.."
echo "keylime-ts: installing the npm dependencies (npm ci; once, about a minute)…" >&2
if ! npm ci --no-audit --no-fund --loglevel=error >&2; then
  echo "keylime-ts: npm ci failed (see above); nothing was started" >&2
  exit 1
fi
echo "keylime-ts: dependencies installed" >&2
