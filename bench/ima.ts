/**
 * IMA verification benchmark: `bun bench/ima.ts` (pin with `taskset -c 0` for per-core figures).
 *
 * - first round: a 100,000-entry ima-ng list (sha1 column 2, sha256 bank) against a 50,000-path
 *   policy, whole list;
 * - incremental rounds: 100 new entries from the stored state;
 * - memory: RSS delta of 1,000 agents sharing one ~20 MiB policy through the PolicyCache, each
 *   holding its lease and a JSON-restored state.
 */

import 'reflect-metadata'
import { createHash } from 'node:crypto'
import { evaluateIma, imaStateFromJSON, imaStateToJSON, PolicyCache } from '../src/ima/index.ts'

const N = 100_000
const PATHS = 50_000
const sha = (a: string, b: Uint8Array | string) => createHash(a).update(b).digest()
const u32 = (n: number) => {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}
const lines: string[] = []
const digests: Record<string, string[]> = {}
let pcr = Buffer.alloc(32)
const pcrAt: Buffer[] = []
for (let i = 0; i < N; i++) {
  const name = `/usr/lib/x86_64-linux-gnu/lib${i % PATHS}.so.${i}`
  const path = i < PATHS ? name : `/usr/lib/x86_64-linux-gnu/lib${i % PATHS}.so.${i % PATHS}`
  const d = sha('sha256', path)
  const data = Buffer.concat([
    u32(40),
    Buffer.from('sha256:\0'),
    d,
    u32(path.length + 1),
    Buffer.from(path),
    Buffer.from([0]),
  ])
  lines.push(`10 ${sha('sha1', data).toString('hex')} ima-ng sha256:${d.toString('hex')} ${path}`)
  digests[path] = [d.toString('hex')]
  pcr = sha('sha256', Buffer.concat([pcr, sha('sha256', data)]))
  pcrAt.push(pcr)
}
const policyJson = JSON.stringify({
  meta: { version: 1, generator: 3 },
  release: 0,
  digests,
  excludes: ['/tmp/.*', '/var/log/.*'],
  keyrings: {},
  ima: { ignored_keyrings: [], log_hash_alg: 'sha1', dm_policy: null },
  'ima-buf': {},
  'verification-keys': '',
})
const cache = new PolicyCache()
const policy = cache.acquire(policyJson).policy
console.log(`policy: ${policy.pathCount} paths, ${(policyJson.length / 1048576).toFixed(1)} MiB`)

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number
const text = `${lines.join('\n')}\n`
const full: number[] = []
for (let r = 0; r < 7; r++) {
  const t0 = performance.now()
  const res = evaluateIma({
    list: text,
    startEntry: 0,
    state: undefined,
    quotedPcr10: pcrAt[N - 1] as Buffer,
    bank: 'sha256',
    policy,
  })
  const ms = performance.now() - t0
  if (res.ok !== true) throw new Error('bench list did not verify')
  full.push(N / (ms / 1000))
}
console.log(
  `first round (100k entries): median ${Math.round(median(full)).toLocaleString()} entries/s (runs ${full.map((x) => Math.round(x)).join(', ')})`,
)

// incremental: 100 new entries per round
const inc: number[] = []
const start = N - 100 * 50
let state = evaluateIma({
  list: `${lines.slice(0, start).join('\n')}\n`,
  startEntry: 0,
  state: undefined,
  quotedPcr10: pcrAt[start - 1] as Buffer,
  bank: 'sha256',
  policy,
}).state
const t0 = performance.now()
for (let k = 0; k < 50; k++) {
  const from = start + k * 100
  const chunk = `${lines.slice(from, from + 100).join('\n')}\n`
  const s = performance.now()
  const r = evaluateIma({
    list: chunk,
    startEntry: from,
    state,
    quotedPcr10: pcrAt[from + 99] as Buffer,
    bank: 'sha256',
    policy,
  })
  inc.push(100 / ((performance.now() - s) / 1000))
  if (r.ok !== true) throw new Error('incremental round failed')
  state = imaStateFromJSON(JSON.parse(JSON.stringify(imaStateToJSON(r.state))))
}
console.log(
  `incremental (100 entries/round, incl. state JSON round-trip): median ${Math.round(median(inc)).toLocaleString()} entries/s; ${((performance.now() - t0) / 50).toFixed(2)} ms/round`,
)

// memory: 20 MiB policy shared by 1,000 agents
const big: Record<string, string[]> = {}
let i = 0
let size = 0
while (size < 20 * 1048576) {
  const p = `/usr/share/some/fairly/long/path/component/file-${i++}.dat`
  const d = sha('sha256', p).toString('hex')
  big[p] = [d]
  size += p.length + d.length + 10
}
const bigJson = JSON.stringify({ ...JSON.parse(policyJson), digests: big })
Bun.gc(true)
const rss0 = process.memoryUsage().rss
const leases = [cache.acquire(bigJson)]
Bun.gc(true)
const rss1 = process.memoryUsage().rss
const states = []
for (let a = 1; a < 1000; a++) {
  leases.push(cache.acquire(bigJson))
  states.push(imaStateFromJSON(imaStateToJSON(state)))
}
Bun.gc(true)
const rss2 = process.memoryUsage().rss
console.log(
  `20 MiB policy (${(bigJson.length / 1048576).toFixed(1)} MiB, ${leases[0]?.policy.pathCount} paths): compiled +${((rss1 - rss0) / 1048576).toFixed(0)} MiB RSS; 999 more agents +${((rss2 - rss1) / 1048576).toFixed(1)} MiB (${leases.every((l) => l.policy === leases[0]?.policy)} shared)`,
)
