#!/usr/bin/env bash
# The one test command (README, CI): installs dependencies if needed, builds dist/keylime, runs
# every suite with `bun test`, and ends with the line `N passed, N failed[, N skipped]`.
#
# Database suites run on embedded PGlite always, and also on PostgreSQL when TEST_DATABASE_URL is
# set (e.g. postgresql://postgres@127.0.0.1:5432/postgres). TPM suites need swtpm + tpm2-tools and
# skip with a printed reason when those are missing.
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x node_modules/.bin/bun ] || bash scripts/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
BUN="$(pwd)/node_modules/.bin/bun"
export PATH="$(pwd)/node_modules/.bin:$PATH"

if [ "${SKIP_BUILD:-}" != 1 ]; then
  bash scripts/build.sh >/dev/null || { echo "build of dist/keylime failed"; echo "0 passed, 1 failed"; exit 1; }
fi
[ -x dist/keylime ] && export KEYLIME_BIN_UNDER_TEST="$(pwd)/dist/keylime"

mkdir -p .tmp
junit=.tmp/junit.xml
rm -f "$junit"
"$BUN" test --timeout 30000 --reporter=junit --reporter-outfile="$junit" "$@"
status=$?

if [ -f "$junit" ]; then
  # <testsuites name="bun test" tests="N" assertions="A" failures="F" skipped="S" …>
  head=$(grep -m1 -o '<testsuites[^>]*>' "$junit")
  total=$(sed -n 's/.* tests="\([0-9]*\)".*/\1/p' <<<"$head")
  failed=$(sed -n 's/.* failures="\([0-9]*\)".*/\1/p' <<<"$head")
  skipped=$(sed -n 's/.* skipped="\([0-9]*\)".*/\1/p' <<<"$head")
  errors=$(sed -n 's/.* errors="\([0-9]*\)".*/\1/p' <<<"$head")
  failed=$(( ${failed:-0} + ${errors:-0} ))
  passed=$(( ${total:-0} - failed - ${skipped:-0} ))
  if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
  echo "${passed} passed, ${failed} failed, ${skipped:-0} skipped"
else
  echo "0 passed, 1 failed"
  [ "$status" -eq 0 ] && status=1
fi
exit "$status"
