/**
 * Exclude-list matching: the linear-time matcher (`src/protocol/linear-regex.ts`) against the
 * backtracking `RegExp` it replaced, on ordinary file names and on hostile ones.
 *
 *   bun bench/linear-regex.ts [names=100000] [runs=5]
 *
 * - ordinary: a 16-pattern exclude list as operators write them, 100,000 names from a
 *   `/usr`-heavy tree (a few excluded), ns per name, median of `runs`;
 * - hostile: one 16 KiB name (the parser's MAX_NAME_BYTES) against `/usr/.*\/.*\/.*\.so`,
 *   which does not match it; the RegExp is timed on a 4 KiB name only (16 KiB takes minutes).
 *
 * @module
 */
import { compileExcludeList, translatePythonRegex } from '../src/ima/python-regex.ts'

const N = Number(process.argv[2] ?? 100_000)
const RUNS = Number(process.argv[3] ?? 5)
const EXCLUDES = [
  '/tmp/.*',
  '/var/log/.*',
  '/var/lib/.*\\.db',
  '/root/\\..*',
  '/home/[^/]+/\\.cache/.*',
  '/run/.*',
  '/proc/.*',
  '/sys/.*',
  'boot_aggregate$',
  '/etc/ld\\.so\\.cache',
  '/usr/share/mime/.*',
  '.*\\.pyc$',
  '/var/cache/(apt|dnf|zypp)/.*',
  '/opt/[a-z]+/logs?/.*',
  '/usr/lib/python3\\.[0-9]+/__pycache__/.*',
  '/dev/shm/.*',
]
const DIRS = [
  '/usr/lib/x86_64-linux-gnu',
  '/usr/bin',
  '/usr/lib/python3.11/site-packages/pkg',
  '/etc',
  '/tmp',
  '/var/log/journal',
  '/home/user/.cache/x',
]
const names = Array.from({ length: N }, (_, i) => `${DIRS[i % DIRS.length]}/file-${i}.so.${i % 7}`)

const linear = compileExcludeList(EXCLUDES)
if (linear === null || linear instanceof RegExp) throw new Error('expected the linear matcher')
const native = new RegExp(
  `^(?:${EXCLUDES.map((e) => `(${translatePythonRegex(e, new Set())})`).join('|')})`,
)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number
const perName = (m: { test(s: string): boolean }): number => {
  const times: number[] = []
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now()
    let hits = 0
    for (const n of names) if (m.test(n)) hits++
    times.push(((performance.now() - t0) * 1e6) / N)
    if (hits === 0) throw new Error('no name excluded')
  }
  return median(times)
}
console.log(
  `ordinary names: linear ${perName(linear).toFixed(0)} ns/name, RegExp ${perName(native).toFixed(0)} ns/name (median of ${RUNS})`,
)

const hostile = compileExcludeList(['/usr/.*/.*/.*\\.so']) as { test(s: string): boolean }
const nativeHostile = /^(?:(\/usr\/.*\/.*\/.*\.so))/
const long = (bytes: number) => `/usr/${'a/'.repeat((bytes - 6) / 2)}x`
let t0 = performance.now()
const hit = hostile.test(long(16 * 1024))
console.log(`hostile 16 KiB name: linear ${(performance.now() - t0).toFixed(2)} ms (match: ${hit})`)
t0 = performance.now()
nativeHostile.test(long(4 * 1024))
console.log(`hostile 4 KiB name: RegExp ${(performance.now() - t0).toFixed(0)} ms`)
