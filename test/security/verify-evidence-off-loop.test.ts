/**
 * Issue 17, finding 7: `POST /verify/evidence` is evaluated off the event loop. A real
 * `keylime --verifier` child process verifies a ~95 MB evidence request (an IMA list of ~595,000
 * real `ima-ng` lines, none allowed by the policy) while a second client probes `GET /version`
 * over mTLS; the probes must stay prompt (c9aa72c held the loop for seconds), and the answer lists
 * at most 100 failures with `failures_omitted` counting the rest.
 *
 * @module
 */
import { afterAll, expect, test } from 'bun:test'
import { join } from 'node:path'
import { loadCaDir } from '../support/fleet/load-ca-dir.ts'
import { freshSoftTpm } from '../support/fleet/soft-tpm.ts'
import { spawnVerifier } from '../support/control-plane-process.ts'
import { evidenceTpmData, largeEvidenceBody } from '../support/large-evidence.ts'
import { probeWhile, summarize } from '../support/probe-latency.ts'

const cleanups: (() => unknown)[] = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

test('GET /version stays prompt while a 95 MB evidence request is verified', async () => {
  const { run, url, dir } = await spawnVerifier()
  cleanups.push(() => run.proc.exitCode === null && run.proc.kill('SIGKILL'))
  const ca = await loadCaDir(join(dir, 'cv_ca'))

  const tpm = freshSoftTpm()
  const nonce = 'evidence0123456789ab'
  const { body, lines } = largeEvidenceBody(evidenceTpmData(tpm, nonce), 95 << 20)
  const tls = { ...ca.client, rejectUnauthorized: true }
  const t0 = performance.now()
  const posted = fetch(`${url}/v2.5/verify/evidence`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    tls,
  } as RequestInit).then(async (res) => ({ status: res.status, json: await res.json() }))
  const probes = await probeWhile(`${url}/version`, ca.client, posted, 20)
  const { status, json } = await posted
  const took = performance.now() - t0
  const s = summarize(probes)
  console.log(
    `evidence of ${(body.length / 2 ** 20).toFixed(0)} MB (${lines} lines) answered in ${took.toFixed(0)} ms; ` +
      `/version during it: ${s.count} probes, p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, max ${s.max.toFixed(1)} ms`,
  )
  expect(status).toBe(200)
  const results = (
    json as { results: { valid: boolean; failures: unknown[]; failures_omitted?: number } }
  ).results
  expect(results.valid).toBe(false)
  expect(results.failures.length).toBe(100)
  expect(results.failures.length + (results.failures_omitted ?? 0)).toBeGreaterThanOrEqual(lines)
  // the evaluation takes seconds of CPU; the loop answers meanwhile (generous bound: shared CI)
  expect(s.count).toBeGreaterThan(5)
  expect(s.max).toBeLessThan(1000)
  expect(run.proc.exitCode).toBeNull()
  expect(await run.stop()).toBe(0)
}, 120_000)
