/**
 * Event-loop cost of `POST /verify/evidence` (issue 17, finding 7): a `keylime --verifier` child
 * process verifies a large evidence request (an IMA list of `--mb` MiB of real `ima-ng` lines,
 * none allowed by the policy: ~600,000 lines and failures at 95 MiB) while a second client probes
 * `GET /version` over mTLS every `--every` ms. Prints, per run, the evidence request's wall time
 * and answer size, and the probes' p50 / p99 / max latency; then the medians over the runs.
 *
 * Usage: bun bench/verify-evidence.ts [--mb 95] [--runs 3] [--every 5] [--main src/main.ts]
 *
 * `--main` runs another tree's entry point, e.g. the base commit for a before/after comparison:
 * `mkdir /tmp/kl-base && git archive c9aa72c | tar -x -C /tmp/kl-base && ln -s $PWD/node_modules
 * /tmp/kl-base/` then `--main /tmp/kl-base/src/main.ts`.
 *
 * @module
 */
import 'reflect-metadata'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { MAIN_TS, spawnVerifier } from '../test/support/control-plane-process.ts'
import { evidenceTpmData, largeEvidenceBody } from '../test/support/large-evidence.ts'
import { probeWhile, summarize } from '../test/support/probe-latency.ts'
import { loadCaDir } from '../test/support/fleet/load-ca-dir.ts'
import { freshSoftTpm } from '../test/support/fleet/soft-tpm.ts'

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '95' },
    runs: { type: 'string', default: '3' },
    every: { type: 'string', default: '5' },
    main: { type: 'string', default: MAIN_TS },
  },
})
const mib = Number(values.mb)
const runs = Number(values.runs)
const everyMs = Number(values.every)
const main = resolve(values.main as string)

const { run: child, url, dir } = await spawnVerifier({}, { main })
process.on('exit', () => child.proc.exitCode === null && child.proc.kill('SIGKILL'))
const ca = await loadCaDir(join(dir, 'cv_ca'))

const tpm = freshSoftTpm()
const tls = { ...ca.client, rejectUnauthorized: true }
console.log(`verifier: ${main}; evidence ${mib} MiB; probe every ${everyMs} ms; ${runs} runs`)

const rows: { ms: number; p50: number; p99: number; max: number }[] = []
for (let i = 0; i < runs; i++) {
  const nonce = `bench${i}0123456789abcdef`.slice(0, 20)
  const { body, lines } = largeEvidenceBody(evidenceTpmData(tpm, nonce), mib * 2 ** 20)
  const bytes = Buffer.from(body) // encoded before the clock starts: the probe shares this thread
  const t0 = performance.now()
  const posted = fetch(`${url}/v2.5/verify/evidence`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: bytes,
    tls,
  } as RequestInit).then(async (res) => ({
    status: res.status,
    bytes: (await res.arrayBuffer()).byteLength,
  }))
  const probes = await probeWhile(`${url}/version`, ca.client, posted, everyMs)
  const answer = await posted
  const ms = performance.now() - t0
  const s = summarize(probes)
  rows.push({ ms, p50: s.p50, p99: s.p99, max: s.max })
  console.log(
    `run ${i + 1}: ${lines} lines, HTTP ${answer.status}, answer ${(answer.bytes / 2 ** 20).toFixed(2)} MiB in ${ms.toFixed(0)} ms; ` +
      `/version ${s.count} probes p50 ${s.p50.toFixed(1)} ms p99 ${s.p99.toFixed(1)} ms max ${s.max.toFixed(1)} ms`,
  )
  await Bun.sleep(500)
}
const median = (k: keyof (typeof rows)[number]) =>
  [...rows.map((r) => r[k])].sort((a, b) => a - b)[Math.floor(rows.length / 2)] ?? 0
console.log(
  `median: evidence ${median('ms').toFixed(0)} ms; /version p50 ${median('p50').toFixed(1)} ms, p99 ${median('p99').toFixed(1)} ms, max ${median('max').toFixed(1)} ms`,
)
await child.stop()
