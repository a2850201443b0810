/**
 * The whole push chain, every piece real (test/support/push-bed.ts): our push agent on swtpm
 * registers at our registrar without an mTLS certificate, `keylime_tenant -c add --push-model`
 * enrols it at our verifier (one cv_ca, real TLS on 127.0.0.1), and the agent authenticates
 * (TPM2_Certify proof of possession, RSA and ECC AKs) and attests on its own schedule:
 * PASS → a PCR 23 extend → FAIL with `failure_reason` and a webhook notice → the PCR reset stays
 * FAIL (no auto-recover, docs/push-mode.md) → `keylime_tenant -c reactivate` → PASS → the agent
 * stopped → TIMEOUT after `quote_interval × 5` → the agent back → PASS → the verifier restarted
 * on the same database and `KEYLIME_DIR`: the agent keeps attesting with the same token.
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { databaseTargets } from './support/databases.ts'
import { type PushBed, startPushBed } from './support/push-bed.ts'
import { missingSwtpmTools, type Swtpm } from './support/swtpm.ts'
import { until } from './support/until.ts'

const missing = missingSwtpmTools(['tpm2_pcrextend', 'tpm2_pcrreset'])
if (missing.length > 0) console.log(`skipping push e2e: missing ${missing.join(', ')}`)

const QUOTE_INTERVAL = 1
const PCR23_ZERO = '0'.repeat(64)

function tpm2(swtpm: Swtpm, args: string[]): void {
  const r = Bun.spawnSync(args, {
    env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  if (r.exitCode !== 0) throw new Error(`${args[0]}: ${r.stderr.toString()}`)
}

/** Verifier ports in our range, one per (database, AK) run: the restart reuses it. */
let nextPort = 19510

for (const target of databaseTargets()) {
  // the AK type is the proof of possession's business, not the database's: one on PostgreSQL
  for (const alg of target.name === 'pglite' ? (['rsa', 'ecc'] as const) : (['ecc'] as const)) {
    describe.skipIf(missing.length > 0)(
      `push e2e, ${alg.toUpperCase()} AK (${target.name})`,
      () => {
        const agentId = `push-e2e-${alg}-${target.name}`.toLowerCase()
        const port = nextPort++
        let bed: PushBed

        beforeAll(async () => {
          bed = await startPushBed({
            database: await target.open(),
            port,
            agentId,
            alg,
            verifier: { quote_interval: String(QUOTE_INTERVAL) },
          })
        }, 60_000)

        afterAll(async () => {
          await bed?.stop()
        })

        test('register → enrol → PASS → FAIL → reactivate → TIMEOUT → PASS → verifier restart', async () => {
          const attestationCount = async () => Number((await bed.status()).attestation_count)
          // the agent registers (no mTLS certificate) and asks for sessions until it is enrolled
          await bed.startAgent()
          const row = await bed.registrar.admin('GET', `/v2.6/agents/${agentId}`)
          expect(row.json.results.mtls_cert).toBeNull()

          const add = await bed.tenant([
            ...['-c', 'add', '-u', agentId, '--push-model'],
            ...['--tpm_policy', JSON.stringify({ '23': [PCR23_ZERO] })],
          ])
          expect({ code: add.code, err: add.code === 0 ? '' : add.err + add.out }).toEqual({
            code: 0,
            err: '',
          })
          expect((await bed.verifier.store.agents.getAgent(agentId))?.mode).toBe('push')

          // session (PoP with TPM2_Certify) → capabilities → evidence → PASS
          await bed.statusIs('PASS', 15_000)
          const pass = await bed.status()
          expect(pass.attestation_period).toBe(`${QUOTE_INTERVAL}s`)
          expect(pass.maximum_attestation_interval).toBe(`${QUOTE_INTERVAL * 5}s`)
          const cv = await bed.tenant(['-c', 'cvstatus', '-u', agentId, '--push-model'])
          expect(cv.code).toBe(0)
          expect(cv.out).toContain('PASS')

          // a PCR in tpm_policy changes → FAIL with failure_reason, and a webhook notice
          tpm2(bed.swtpm, ['tpm2_pcrextend', `23:sha256=${'ab'.repeat(32)}`])
          await bed.statusIs('FAIL', 10_000)
          const latest = await bed.verifier.app.request(
            `/v3.0/agents/${agentId}/attestations/latest`,
          )
          const doc = (await latest.json()) as { data: { attributes: Record<string, unknown> } }
          expect(doc.data.attributes.evaluation).toBe('fail')
          expect(doc.data.attributes.failure_reason).toBe('policy_violation')
          expect(doc.data.attributes.verification_completed_at).toEqual(expect.any(String))
          await until(() => bed.notices.some((n) => n.msg.includes(agentId)), 5000, 'webhook')

          // the PCR back to its policy value: without auto-recover the agent stays FAIL
          tpm2(bed.swtpm, ['tpm2_pcrreset', '23'])
          const after = await attestationCount()
          await until(async () => (await attestationCount()) >= after + 2, 10_000, 'attesting')
          expect((await bed.status()).attestation_status).toBe('FAIL')
          const react = await bed.tenant(['-c', 'reactivate', '-u', agentId, '--push-model'])
          expect({ code: react.code, err: react.code === 0 ? '' : react.err }).toEqual({
            code: 0,
            err: '',
          })
          await bed.statusIs('PASS', 10_000)

          // a silent agent → TIMEOUT after quote_interval × 5, with a notice; back → PASS
          await bed.stopAgent()
          const silentAt = Date.now()
          await bed.statusIs('TIMEOUT', 12_000)
          expect(Date.now() - silentAt).toBeGreaterThanOrEqual(QUOTE_INTERVAL * 5 * 1000 - 1500)
          await until(
            () => bed.notices.some((n) => n.msg.includes(agentId) && /timeout/i.test(n.msg)),
            5000,
            'timeout notice',
          )
          await bed.startAgent()
          await bed.statusIs('PASS', 15_000)

          // the verifier restarts on the same database and KEYLIME_DIR: the token still holds
          const before = bed.sessions()
          await bed.restartVerifier()
          const count = await attestationCount()
          const restartedAt = Date.now()
          await until(async () => (await attestationCount()) > count, 4000, 'attesting on')
          expect(Date.now() - restartedAt).toBeLessThan(QUOTE_INTERVAL * 2 * 1000 + 1500)
          expect(bed.sessions()).toBe(before)
          expect((await bed.status()).attestation_status).toBe('PASS')
          // upstream's log wording, which keylime-tests grep for
          expect(
            bed.logs.some((l) => l.includes(`for agent '${agentId}' failed verification`)),
          ).toBe(true)
        }, 90_000)
      },
    )
  }
}
