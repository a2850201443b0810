#!/usr/bin/env bash
# Builds dist/keylime-agent: the slim agent (src/agent only: no registrar, verifier, tenant,
# database) as one executable, with the tpm_device N-API addon embedded (a literal require of
# src/agent/native/build/Release/tpm_device.node; bun-and-tools §2.2). Also writes the bundle's
# module list to dist/keylime-agent.meta.json (test/agent-bundle.test.ts checks it).
set -euo pipefail
cd "$(dirname "$0")/.."
BUN="${BUN:-$(pwd)/node_modules/.bin/bun}"
NODE_GYP="${NODE_GYP:-$(pwd)/node_modules/.bin/node-gyp}"
NODEDIR="${NODEDIR:-/usr}"
mkdir -p dist
( cd src/agent/native && "$NODE_GYP" rebuild --loglevel=error --nodedir="$NODEDIR" >/dev/null )
"$BUN" build --target=bun --format=esm --metafile=dist/keylime-agent.meta.json \
  --outdir=dist/.agent-bundle src/agent/main.ts >/dev/null
"$BUN" build --compile --bytecode --format=esm --minify-syntax src/agent/main.ts \
  --outfile dist/keylime-agent
ls -l dist/keylime-agent
