/**
 * Mirror of keylime-tests `functional/measured-boot-swtpm-sanity` (RedHat-SP-Security/keylime-tests
 * `ab163590314546d90cdcd7a89e56d3d0b562f4ec`, `/pull` plan), in two parts.
 *
 * Attestation verdicts — upstream's agent quotes a swtpm and serves its `binary_bios_measurements`
 * (this repository: `test/fixtures/mb/keylime-tests/`); here the same evidence goes to `POST
 * /verify/evidence` (tpm2-tools quote of sha256:0–15, the log in base64, the policy as JSON text):
 * 1. verifier `measured_boot_policy_name = accept-all`, MB policy `{}`: PASS;
 * 2. `example`, the policy from `keylime policy create measured-boot -e <log>`, PCRs not extended:
 *    FAIL, `measured_boot.invalid_pcr_0` (upstream logs "For PCR 0 and hash sha256 the boot event
 *    log has value … but the agent … returned …");
 * 3. the PCRs extended with the log's events (upstream: `tsseventextend`): PASS;
 * 4. (from `functional/measured-boot-policy-sanity`) the policy with every `0x[1-9a-f]` turned to
 *    `0x0`: FAIL.
 *
 * Tenant commands — the control plane as a child process, one simulated agent registered:
 * 5. `-c add --tpm_policy '{"15":[…]}' --mb-policy {}`: refused, "PCR 15 is specified in
 *    "tpm_policy", but will in fact be used by measured boot. Please remove it from policy";
 * 6. `addmbpolicy` 201, again 409 "Measured boot policy with name mypolicy already exists",
 *    `listmbpolicy`, `showmbpolicy` `{name: 'mypolicy', mb_policy: '{}'}`, `updatembpolicy` then
 *    no longer `{}`, `deletembpolicy` then 404 "Measured boot policy mypolicy not found";
 * 7. an agent added with `--mb-policy` and no name gets a policy named by its UUID, removed with
 *    the agent; a named policy in use cannot be deleted (409 "Can't delete mb_policy as it's
 *    currently in use by agent <id>"), survives its agent's deletion; a missing name is 404 "Could
 *    not find mb_policy with name non_existing_policy!".
 *
 * Not mirrored: the pull agent reading a custom log (the verdicts are asserted through
 * `/verify/evidence`, the pull rounds' own checks: `test/mb-verifier-e2e.test.ts` runs them on
 * agents), the service restarts between phases, and the `/push` plan.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { runPolicyCreateMeasuredBoot } from '../../src/policy-tools/create-refstate-cli.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { databaseTargets } from '../support/databases.ts'
import { extendEventLog, runTool } from '../support/host-evidence.ts'
import { startTenantBed, type TenantBed } from '../support/tenant-bed.ts'
import { missingTpm2ToolsAgentTools, Tpm2ToolsAgent } from '../support/tpm2-tools-agent.ts'
import { createTestCa, startTestVerifier } from '../support/verifier-harness.ts'

const LOG_PATH = join(import.meta.dir, '../fixtures/mb/keylime-tests/binary_bios_measurements')
const missing = [
  ...missingTpm2ToolsAgentTools(),
  ...['tpm2_quote', 'tpm2_pcrextend', 'tpm2_eventlog'].filter((t) => !Bun.which(t)),
]
if (missing.length > 0) console.log(`skipping MB verdicts: missing ${missing.join(', ')}`)

const ZERO_POLICY_15 = JSON.stringify({
  15: ['0'.repeat(40), '0'.repeat(64), '0'.repeat(96)],
})

/** The HTTP status of a failed `--json` tenant run. */
function httpStatus(doc: Record<string, unknown>): number | undefined {
  return (doc.error as { http_status?: number } | undefined)?.http_status
}

/** `valid` and failure types of a `/verify/evidence` answer. */
interface Verdict {
  status: number
  valid: boolean
  types: string[]
}

describe.skipIf(missing.length > 0)('measured-boot-swtpm-sanity: attestation verdicts', () => {
  let db: KeylimeDatabase
  let acceptAll: VerifierHandle
  let example: VerifierHandle
  let tpm: Tpm2ToolsAgent
  let akPub: Buffer
  let refstate: string

  beforeAll(async () => {
    db = await databaseTargets()[0]!.open()
    const ca = await createTestCa()
    acceptAll = await startTestVerifier(db, ca, { measured_boot_policy_name: 'accept-all' })
    example = await startTestVerifier(db, ca, { measured_boot_policy_name: 'example' })
    tpm = await Tpm2ToolsAgent.start()
    akPub = tpm.createAk('mb')
    refstate = await runTool(runPolicyCreateMeasuredBoot, ['-e', LOG_PATH, '-o', '-'])
  }, 60_000)

  afterAll(async () => {
    await acceptAll?.stop(200)
    await example?.stop(200)
    await tpm?.remove()
    await db?.close()
  })

  /** The agent's evidence (fresh quote, the log) with `mbPolicy`, verified by `verifier`. */
  async function attest(verifier: VerifierHandle, mbPolicy: string): Promise<Verdict> {
    const nonce = `mb${Date.now().toString(36)}`
    tpm.flushAll()
    tpm.must([
      ...['tpm2_quote', '-c', 'ak-mb.ctx', '-l', 'sha256:0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15'],
      ...['-q', Buffer.from(nonce).toString('hex'), '-g', 'sha256'],
      ...['-m', 'q.msg', '-s', 'q.sig', '-o', 'q.pcrs'],
    ])
    tpm.flushAll()
    const b64 = (f: string) => readFileSync(join(tpm.work, f)).toString('base64')
    const data = {
      quote: `r${b64('q.msg')}:${b64('q.sig')}:${b64('q.pcrs')}`,
      nonce,
      hash_alg: 'sha256',
      tpm_ek: tpm.ekPub.toString('base64'),
      tpm_ak: akPub.toString('base64'),
      tpm_policy: '{}',
      mb_policy: mbPolicy,
      mb_log: readFileSync(LOG_PATH).toString('base64'),
    }
    const res = await verifier.app.request('/v2.5/verify/evidence', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'tpm', data }),
    })
    const j = (await res.json()) as {
      results: { valid: boolean; failures: { type: string }[] }
    }
    return {
      status: res.status,
      valid: j.results.valid,
      types: j.results.failures.map((f) => f.type),
    }
  }

  test('1. accept-all with the empty policy {}: PASS', async () => {
    const r = await attest(acceptAll, '{}')
    expect(r).toEqual({ status: 200, valid: true, types: [] })
  })

  test('2. example policy, PCR banks not matching the log: FAIL on PCR 0', async () => {
    const r = await attest(example, refstate)
    expect(r.status).toBe(200)
    expect(r.valid).toBe(false)
    expect(r.types).toContain('measured_boot.invalid_pcr_0')
  })

  test('3. after extending the PCRs with the log: PASS', async () => {
    expect(extendEventLog(tpm, LOG_PATH)).toBe(94)
    const r = await attest(example, refstate)
    expect(r).toEqual({ status: 200, valid: true, types: [] })
  })

  test('4. (measured-boot-policy-sanity) a policy with digits zeroed: FAIL', async () => {
    const modified = refstate.replace(/0x[1-9a-f]/g, '0x0')
    expect(modified).not.toBe(refstate)
    const r = await attest(example, modified)
    expect(r.status).toBe(200)
    expect(r.valid).toBe(false)
    expect(r.types).toContain('measured_boot.policy_example')
  })
})

describe('measured-boot-swtpm-sanity: tenant commands', () => {
  let bed: TenantBed
  /** Test 7's answer to deleting a policy in use (read by the test after it). */
  let inUseText = ''
  const work = mkdtempSync(join(tmpdir(), 'kl-kt-mb-'))
  const file = (name: string, text: string) => {
    writeFileSync(join(work, name), text)
    return join(work, name)
  }
  const agentId = () => bed.agents[0]!.uuid

  /** `keylime_tenant <args> --json`. */
  const tenant = (args: string[]) => bed.tenant([...args, '--json'])

  /** `keylime_tenant -u <agent> -f hostname -c add <extra>`. */
  const addAgent = (extra: string[]) =>
    tenant([
      ...bed.agentArgs(bed.agents[0]!),
      ...['-f', file('hostname', 'keylime-tests\n'), '-c', 'add', ...extra],
    ])

  beforeAll(async () => {
    bed = await startTenantBed({ count: 1, seed: `kt-mb-${process.pid}` })
  }, 60_000)

  afterAll(async () => {
    await bed?.stop()
  })

  test('5. PCR 15 in tpm_policy with an MB policy is refused', async () => {
    const r = await addAgent(['--tpm_policy', ZERO_POLICY_15, '--mb-policy', file('mb.txt', '{}')])
    expect(r.code).not.toBe(0)
    expect(r.text).toContain(
      'PCR 15 is specified in "tpm_policy", but will in fact be used by measured boot. Please remove it from policy',
    )
  })

  test('6. addmbpolicy, 409 on the same name, list, show, update, delete, 404', async () => {
    const empty = file('mb_refstate.txt', '{}')
    const other = file('mb_refstate3.txt', JSON.stringify({ has_secureboot: false }))
    const add = await tenant([
      '-c',
      'addmbpolicy',
      '--mb-policy-name',
      'mypolicy',
      '--mb-policy',
      empty,
    ])
    expect(add.code).toBe(0)
    const again = await tenant([
      '-c',
      'addmbpolicy',
      '--mb-policy-name',
      'mypolicy',
      '--mb-policy',
      other,
    ])
    expect(again.code).not.toBe(0)
    expect(httpStatus(again.doc)).toBe(409)
    expect(again.text).toContain('Measured boot policy with name mypolicy already exists')
    expect(JSON.stringify((await tenant(['-c', 'listmbpolicy'])).doc)).toContain('mypolicy')
    const show = await tenant(['-c', 'showmbpolicy', '--mb-policy-name', 'mypolicy'])
    expect(show.doc.results).toEqual({ name: 'mypolicy', mb_policy: '{}' })
    const upd = await tenant([
      '-c',
      'updatembpolicy',
      '--mb-policy-name',
      'mypolicy',
      '--mb-policy',
      other,
    ])
    expect(upd.code).toBe(0)
    const shown = await tenant(['-c', 'showmbpolicy', '--mb-policy-name', 'mypolicy'])
    expect(shown.doc.results).not.toEqual({ name: 'mypolicy', mb_policy: '{}' })
    expect((await tenant(['-c', 'deletembpolicy', '--mb-policy-name', 'mypolicy'])).code).toBe(0)
    const gone = await tenant(['-c', 'showmbpolicy', '--mb-policy-name', 'mypolicy'])
    expect(gone.code).not.toBe(0)
    expect(httpStatus(gone.doc)).toBe(404)
    expect(gone.text).toContain('Measured boot policy mypolicy not found')
  })

  test('7. policies named by the agent, in use, kept, missing', async () => {
    const empty = file('mb_refstate.txt', '{}')
    expect((await addAgent(['--mb-policy', empty])).code).toBe(0)
    const byUuid = await tenant(['-c', 'showmbpolicy', '--mb-policy-name', agentId()])
    expect(byUuid.doc.results).toEqual({ name: agentId(), mb_policy: '{}' })
    expect((await tenant(['-c', 'delete', '-u', agentId()])).code).toBe(0)
    const removed = await tenant(['-c', 'showmbpolicy', '--mb-policy-name', agentId()])
    expect(removed.code).not.toBe(0)
    expect(httpStatus(removed.doc)).toBe(404)
    expect(removed.text).toContain(`Measured boot policy ${agentId()} not found`)

    const add = ['-c', 'addmbpolicy', '--mb-policy-name', 'mypolicy', '--mb-policy', empty]
    expect((await tenant(add)).code).toBe(0)
    expect((await addAgent(['--mb-policy-name', 'mypolicy'])).code).toBe(0)
    const inUse = await tenant(['-c', 'deletembpolicy', '--mb-policy-name', 'mypolicy'])
    expect(inUse.code).not.toBe(0)
    expect(httpStatus(inUse.doc)).toBe(409)
    inUseText = inUse.text
    expect((await tenant(['-c', 'delete', '-u', agentId()])).code).toBe(0)

    expect((await addAgent(['--mb-policy-name', 'mypolicy2', '--mb-policy', empty])).code).toBe(0)
    expect((await tenant(['-c', 'delete', '-u', agentId()])).code).toBe(0)
    const kept = await tenant(['-c', 'showmbpolicy', '--mb-policy-name', 'mypolicy2'])
    expect(kept.code).toBe(0)

    const none = await addAgent(['--mb-policy-name', 'non_existing_policy'])
    expect(none.code).not.toBe(0)
    expect(httpStatus(none.doc)).toBe(404)
    expect(none.text).toContain('Could not find mb_policy with name non_existing_policy!')
  }, 30_000)

  test('7b. the 409 for a policy in use names the agent, as upstream', () => {
    expect(inUseText).toContain(
      `Can't delete mb_policy as it's currently in use by agent ${agentId()}`,
    )
  })
})
