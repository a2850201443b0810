/**
 * Push liveness with several verifiers on one database: evidence may reach any instance (it is
 * verified where it arrives), the status reads the same everywhere, and a timeout is recorded and
 * notified once, by the agent's lease owner, even when that owner dies and another takes over.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { setLogSink } from '../src/log/logger.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { databaseTargets } from './support/databases.ts'
import { generateSoftTpmKey, SoftTpm } from './support/fleet/soft-tpm.ts'
import { until } from './support/until.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'
import { pushCapabilities } from './support/push-capabilities.ts'

setLogSink(() => {}, false)

const JSON_API = 'application/vnd.api+json'
const LEASE_MS = 1500

for (const target of databaseTargets()) {
  describe(`push liveness across verifiers (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let ca: TestCa
    let webhook: ReturnType<typeof Bun.serve>
    const notices: string[] = []
    const verifiers: VerifierHandle[] = []
    const start = async (instanceId: string) => {
      const v = await startTestVerifier(
        kdb,
        ca,
        {
          quote_interval: '0.4',
          revocations_enabled_revocation_notifications: "['webhook']",
          revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook`,
        },
        { instanceId, leaseMs: LEASE_MS, checkWorkers: 0 },
      )
      verifiers.push(v)
      return v
    }

    beforeAll(async () => {
      ca = await createTestCa()
      kdb = await target.open()
      webhook = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: async (req) => {
          notices.push(((await req.json()) as { msg: string }).msg)
          return new Response('ok')
        },
      })
    }, 30_000)

    afterAll(async () => {
      for (const v of verifiers) await v.stop(100).catch(() => undefined)
      webhook?.stop(true)
      await kdb?.close()
    })

    test('evidence on B, lease on A; A dies and B records the timeout once', async () => {
      const a = await start('A')
      const tpm = new SoftTpm({
        keys: {
          ek: generateSoftTpmKey('ecc'),
          ak: generateSoftTpmKey('ecc'),
          nk: generateSoftTpmKey('rsa'),
        },
      })
      const id = `push-multi-${target.name}`
      const enrolled = await a.app.request(`/v3.0/agents`, {
        method: 'POST',
        headers: { 'content-type': JSON_API },
        body: JSON.stringify({
          data: {
            type: 'agent',
            id,
            attributes: {
              tpm_policy: JSON.stringify({
                '15': [Buffer.from(tpm.readPcr('sha256', 15)).toString('hex')],
                mask: '0x8000',
              }),
              runtime_policy: '',
              mb_policy: null,
              mb_policy_name: '',
              ima_sign_verification_keys: '',
              metadata: '{}',
              revocation_key: '',
              accept_tpm_hash_algs: ['sha256'],
              accept_tpm_encryption_algs: ['ecc'],
              accept_tpm_signing_algs: ['ecdsa'],
              ak_tpm: Buffer.from(tpm.akTpm2b).toString('base64'),
            },
          },
        }),
      })
      expect(enrolled.status).toBe(201)
      expect(a.loop.records.get(id)?.push).toBe(true)
      const b = await start('B')

      // phase 1 on A, phase 2 on B: B verifies
      const caps = pushCapabilities({
        akType: 'ecc',
        akTpm2b: tpm.akTpm2b,
        subjects: { sha256: [15] },
      })
      const created = await a.asAgent(id).request(`/v3.0/agents/${id}/attestations`, {
        method: 'POST',
        headers: { 'content-type': JSON_API },
        body: JSON.stringify(caps),
      })
      expect(created.status).toBe(201)
      const req = (
        (await created.json()) as {
          data: {
            attributes: { evidence_requested: { chosen_parameters: { challenge: string } }[] }
          }
        }
      ).data.attributes.evidence_requested
      const q = tpm.quote(Buffer.from(req[0]!.chosen_parameters.challenge, 'base64'), [15])
      const b64 = (x: Uint8Array) => Buffer.from(x).toString('base64')
      const sent = await b.asAgent(id).request(created.headers.get('location')!, {
        method: 'PATCH',
        headers: { 'content-type': JSON_API },
        body: JSON.stringify({
          data: {
            type: 'attestation',
            attributes: {
              evidence_collected: [
                {
                  evidence_class: 'certification',
                  evidence_type: 'tpm_quote',
                  data: {
                    message: b64(q.attest),
                    signature: b64(q.signature),
                    subject_data: b64(q.pcrBlob),
                  },
                },
              ],
            },
          },
        }),
      })
      expect(sent.status).toBe(202)
      await b.service.attestations!.idle()
      const statusOn = async (v: VerifierHandle) =>
        (
          (await (await v.app.request(`/v2.6/agents/${id}`)).json()) as {
            results: { attestation_status: string }
          }
        ).results.attestation_status
      expect(await statusOn(a)).toBe('PASS')
      expect(await statusOn(b)).toBe('PASS')

      // the lease owner dies without a word; B takes the agent over and records the timeout
      await a.loop.halt()
      await until(() => b.loop.records.has(id), 10_000, 'B holds the agent')
      await until(async () => (await statusOn(b)) === 'TIMEOUT', 10_000, 'TIMEOUT')
      const mine = () => notices.filter((m) => m.includes(id))
      await until(() => mine().length === 1, 10_000, 'one timeout notice')
      await Bun.sleep(1500)
      expect(mine()).toHaveLength(1)
      expect((await b.store.agents.getAgent(id))?.accept_attestations).toBe(false)
    }, 40_000)
  })
}
