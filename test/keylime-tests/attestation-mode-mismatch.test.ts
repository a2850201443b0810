/**
 * Mirror of keylime-tests `functional/attestation-mode-mismatch` (RedHat-SP-Security/keylime-tests
 * `ab163590314546d90cdcd7a89e56d3d0b562f4ec`): an agent enrolled in the other mode than it runs
 * in never attests.
 *
 * 1. "Push verifier vs. pull agent": a verifier with `[verifier] mode = push` (the control plane,
 *    test/support/tenant-bed.ts) and a registered pull agent (a simulated one); `keylime_tenant -c
 *    add` (pull) succeeds, the agent is enrolled in push mode, and its
 *    `attestation_status` is neither PASS nor FAIL for `quote_interval × 5`, then `PENDING`.
 * 2. "Pull verifier vs. push agent": upstream's pull-only verifier refuses `add --push-model` (400
 *    "mTLS certificate for agent is required"). keylime-ts serves both modes in one verifier
 *    (docs/push-mode.md), so there the mismatch is a push agent enrolled in pull mode:
 *    `keylime_tenant -c add` without `--push-model` fails (the push agent listens nowhere); a pull
 *    enrolment (with a `v`) without an mTLS certificate is refused with upstream's 400 "mTLS
 *    certificate for agent is required!"; with one, the agent's attestations answer 404 and it
 *    never passes.
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { databaseTargets } from '../support/databases.ts'
import { type PushBed, startPushBed } from '../support/push-bed.ts'
import { missingSwtpmTools } from '../support/swtpm.ts'
import { startTenantBed, type TenantBed } from '../support/tenant-bed.ts'
import { until } from '../support/until.ts'
import { enrolmentBody } from '../support/fleet/enroll-agent.ts'

const missing = missingSwtpmTools()
if (missing.length > 0)
  console.log(`skipping attestation-mode-mismatch phase 2: ${missing.join(', ')}`)

const QUOTE_INTERVAL = 1

describe('keylime-tests functional/attestation-mode-mismatch', () => {
  let tenantBed: TenantBed | undefined
  let pushBed: PushBed | undefined

  afterAll(async () => {
    await tenantBed?.stop()
    await pushBed?.stop()
  })

  test('push verifier vs. pull agent: enrolled, never PASS nor FAIL, PENDING', async () => {
    tenantBed = await startTenantBed({
      count: 1,
      seed: 'mode-mismatch',
      env: {
        KEYLIME_VERIFIER_MODE: 'push',
        KEYLIME_VERIFIER_QUOTE_INTERVAL: String(QUOTE_INTERVAL),
      },
    })
    const agent = tenantBed.agents[0]!
    const add = await tenantBed.tenant([...tenantBed.agentArgs(agent), '-c', 'add'])
    expect({ code: add.code, err: add.code === 0 ? '' : add.text }).toEqual({ code: 0, err: '' })
    const status = async () => {
      const r = await tenantBed!.tenant([
        '-c',
        'cvstatus',
        '-u',
        agent.uuid,
        '--push-model',
        '--json',
      ])
      return JSON.stringify(r.doc)
    }
    const until5 = Date.now() + QUOTE_INTERVAL * 5 * 1000
    while (Date.now() < until5) {
      expect(await status()).not.toMatch(/"attestation_status":"(PASS|FAIL)"/)
      await Bun.sleep(500)
    }
    expect(await status()).toContain('"attestation_status":"PENDING"')
  }, 60_000)

  test.skipIf(missing.length > 0)(
    'pull enrolment vs. push agent: refused without an mTLS certificate; as pull, never attests',
    async () => {
      const target = databaseTargets()[0]!
      const agentId = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
      pushBed = await startPushBed({
        database: await target.open(),
        port: 19550,
        agentId,
        verifier: { quote_interval: String(QUOTE_INTERVAL) },
      })
      await pushBed.startAgent()
      const add = await pushBed.tenant([
        ...['-v', '127.0.0.1', '-t', '127.0.0.1', '-tp', '19551'],
        ...['-u', agentId, '-c', 'add'],
      ])
      expect(add.code).not.toBe(0)
      expect(await pushBed.verifier.store.agents.getAgent(agentId)).toBeUndefined()

      // enrolled in pull mode (a V is sent): without an mTLS certificate it is refused, as by
      // upstream's pull verifier; with one, the push agent's attestations are refused
      const ak = (await pushBed.registrar.admin('GET', `/v2.6/agents/${agentId}`)).json.results
        .aik_tpm as string
      const enrol = (mtlsCert: string | null) =>
        pushBed!.verifier.app.request(`/v2.6/agents/${agentId}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(
            enrolmentBody(
              { ip: '127.0.0.1', port: 19551, akTpm: ak, acceptHashAlgs: ['sha256'] },
              { v: randomBytes(32).toString('base64'), mtls_cert: mtlsCert },
            ),
          ),
        })
      const noCert = await enrol(null)
      expect(noCert.status).toBe(400)
      expect(((await noCert.json()) as { status: string }).status).toMatch(
        /mTLS certificate for agent is required/,
      )
      const res = await enrol(pushBed.registrar.client.cert)
      expect(res.status, await res.clone().text()).toBe(200)
      expect((await pushBed.verifier.store.agents.getAgent(agentId))?.mode).toBe('pull')
      const refused = () =>
        pushBed!.sent.filter((s) => s === `POST /v3.0/agents/${agentId}/attestations 404`).length
      await until(() => refused() > 0, 10_000, 'the agent tries to attest: 404')
      expect(pushBed.sent.filter((s) => / 20[12]$/.test(s) && s.includes('attestations'))).toEqual(
        [],
      )
      await Bun.sleep(1000)
      expect(
        pushBed.logs.some((l) => l.includes(`for agent '${agentId}' successfully passed`)),
      ).toBe(false)
      const row = await pushBed.verifier.store.agents.getAgent(agentId)
      expect(row?.last_received_quote ?? 0).toBe(0)
    },
    60_000,
  )
})
