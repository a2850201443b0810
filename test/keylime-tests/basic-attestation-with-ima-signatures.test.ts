/**
 * Mirror of two keylime-tests scenarios (RedHat-SP-Security/keylime-tests
 * `ab163590314546d90cdcd7a89e56d3d0b562f4ec`) on one control plane (child process) with two
 * simulated pull agents whose IMA lists are the test's:
 *
 * `functional/basic-attestation-with-ima-signatures` — a test script signed with the IMA key
 * (`evmctl ima_sign -a sha256`, here openssl: `test/support/ima-signing.ts`) is measured as an
 * `ima-sig` entry; the runtime policy (`limeCreateTestPolicy`: allowlist + excludelist) does not
 * list it. `keylime_tenant … --runtime-policy policy.json -f /etc/hostname --sign_verification_key
 * <key> -c add` → the agent attests ("Get Quote", in `cvlist`); the script changed (`echo >>`, the
 * old `security.ima` kept) → "Invalid Quote", the verifier naming the file ("File not found in
 * allowlist: <script>" or "signature for file <script> is not valid").
 *
 * `functional/use-multiple-ima-sign-verification-keys` — two keys sign two scripts; `add` with two
 * `--sign_verification_key`; both scripts run and are measured: still attesting; `script_first.sh`
 * changed → "Invalid Quote". Added here (not upstream): a third agent given only the first key
 * fails on the second script, so a signature counts only with its own key.
 *
 * Not mirrored: the kernel side (xattrs, `getfattr`, `evmctl ima_verify`, running the scripts); the
 * agents are simulated (`test/support/fleet`), their PCR 10 replayed from the list they serve.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runPolicyCreateRuntime } from '../../src/policy-tools/index.ts'
import { OPENSSL } from '../support/ca-helpers.ts'
import type { SimAgent } from '../support/fleet/sim-agent.ts'
import { imaEntry, runTool } from '../support/host-evidence.ts'
import { type ImaSigningKey, imaSign, makeImaSigningKey } from '../support/ima-signing.ts'
import { startTenantBed, type TenantBed } from '../support/tenant-bed.ts'
import { untilValue } from '../support/until.ts'

if (!OPENSSL) console.log('skipping IMA signature scenarios: no openssl')

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')
const TESTDIR = '/keylime-tests/ima-sig'
const HOSTNAME = 'keylime-tests\n'
/** boot_aggregate over the simulated agents' PCRs 0–9 (all zero). */
const BOOT_AGGREGATE = createHash('sha256').update(Buffer.alloc(320)).digest('hex')

describe.skipIf(!OPENSSL)('keylime-tests IMA signature scenarios', () => {
  let bed: TenantBed
  const work = mkdtempSync(join(tmpdir(), 'kl-kt-imasig-'))
  const keys: Record<'ima' | 'first' | 'second', ImaSigningKey> = {} as never
  let policy: string

  /** The list every agent starts with: boot_aggregate and /etc/hostname. */
  const baseList = () =>
    imaEntry('boot_aggregate', BOOT_AGGREGATE).line +
    imaEntry('/etc/hostname', sha256(HOSTNAME)).line

  /** `cvstatus`: the agent's `operational_state` and `attestation_count`. */
  async function status(a: SimAgent): Promise<{ state: string; count: number }> {
    const r = await bed.tenant(['-c', 'cvstatus', '-u', a.uuid, '--json'])
    const s = (r.doc.results as Record<string, Record<string, unknown>>)[a.uuid]!
    return { state: String(s.operational_state), count: Number(s.attestation_count ?? 0) }
  }

  /** `limeWaitForAgentStatus <id> <state>`, after `atLeast` attestations. */
  const waitFor = (a: SimAgent, state: RegExp, atLeast = 0) =>
    untilValue(
      async () => {
        const s = await status(a)
        return state.test(s.state) && s.count >= atLeast && s
      },
      20_000,
      `agent in ${state} after ${atLeast} attestations`,
    )

  /** `keylime_tenant -c add` with the policy and `keyFiles` as `--sign_verification_key`. */
  const add = (a: SimAgent, keyFiles: string[]) =>
    bed.tenant([
      ...bed.agentArgs(a),
      ...['--runtime-policy', policy, '-f', join(work, 'hostname')],
      ...keyFiles.flatMap((k) => ['--sign_verification_key', k]),
      '-c',
      'add',
    ])

  beforeAll(async () => {
    bed = await startTenantBed({
      count: 3,
      seed: `kt-imasig-${process.pid}`,
      env: { KEYLIME_VERIFIER_QUOTE_INTERVAL: '0.3' },
    })
    for (const k of ['ima', 'first', 'second'] as const) keys[k] = makeImaSigningKey(work, k)
    writeFileSync(join(work, 'hostname'), HOSTNAME)
    // limeCreateTestPolicy: the scripts are in no allowlist, only their signatures vouch for them.
    writeFileSync(
      join(work, 'allowlist.txt'),
      `${BOOT_AGGREGATE}  boot_aggregate\n${sha256(HOSTNAME)}  /etc/hostname\n`,
    )
    writeFileSync(join(work, 'excludelist.txt'), '/tmp/.*\n')
    policy = join(work, 'policy.json')
    await runTool(runPolicyCreateRuntime, [
      ...[
        '--allowlist',
        join(work, 'allowlist.txt'),
        '--excludelist',
        join(work, 'excludelist.txt'),
      ],
      ...['--output', policy],
    ])
  }, 60_000)

  afterAll(async () => {
    await bed?.stop()
  })

  describe('functional/basic-attestation-with-ima-signatures', () => {
    const SCRIPT = `${TESTDIR}/echo`
    const CONTENT = '#!/bin/bash\necho boom\n'
    let xattr: string

    test('a signed script in the list: the agent attests with the IMA key', async () => {
      const a = bed.agents[0]!
      xattr = imaSign(keys.ima, work, CONTENT)
      a.serveImaList(baseList() + imaEntry(SCRIPT, sha256(CONTENT), xattr).line)
      const r = await add(a, [keys.ima.publicKey])
      expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
      await waitFor(a, /^Get Quote$/, 2)
      expect((await bed.tenant(['-c', 'cvlist'])).text).toContain(a.uuid)
    }, 30_000)

    test('the script changed (old signature kept): Invalid Quote, not_in_allowlist', async () => {
      const a = bed.agents[0]!
      const changed = `${CONTENT}\n`
      a.serveImaList(
        baseList() +
          imaEntry(SCRIPT, sha256(CONTENT), xattr).line +
          imaEntry(SCRIPT, sha256(changed), xattr).line,
      )
      await waitFor(a, /^(Failed|Invalid Quote)$/)
      expect(bed.output()).toMatch(
        new RegExp(
          `attestation failed agent_id=${a.uuid} event_id=ima\\.validation\\.ima-ng\\.not_in_allowlist`,
        ),
      )
      expect((await bed.tenant(['-c', 'cvstatus', '-u', a.uuid])).text).toContain(
        '"last_event_id": "ima.validation.ima-ng.not_in_allowlist"',
      )
    }, 30_000)
  })

  // upstream's WARNING names the file ("File not found in allowlist: <path>"); the scenario greps it
  test('basic: the verifier log names the changed file, as upstream', () => {
    const path = `${TESTDIR}/echo`
    expect(bed.output()).toMatch(
      new RegExp(`File not found in allowlist: ${path}|signature for file ${path} is not valid`),
    )
  })

  describe('functional/use-multiple-ima-sign-verification-keys', () => {
    const FIRST = `${TESTDIR}/script_first.sh`
    const SECOND = `${TESTDIR}/script_second.sh`
    const ONE = '#!/bin/bash\necho "Hello one!"\n'
    const TWO = '#!/bin/bash\necho "Hello two!"\n'
    let signed: string

    test('added with two --sign_verification_key: attests', async () => {
      const a = bed.agents[1]!
      a.serveImaList(baseList())
      const r = await add(a, [keys.first.publicKey, keys.second.publicKey])
      expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
      await waitFor(a, /^Get Quote$/, 1)
      expect((await bed.tenant(['-c', 'cvlist'])).text).toContain(a.uuid)
    }, 30_000)

    test('both scripts run, each signed by its own key: still compliant', async () => {
      const a = bed.agents[1]!
      signed =
        baseList() +
        imaEntry(FIRST, sha256(ONE), imaSign(keys.first, work, ONE)).line +
        imaEntry(SECOND, sha256(TWO), imaSign(keys.second, work, TWO)).line
      a.serveImaList(signed)
      const before = (await status(a)).count
      await waitFor(a, /^Get Quote$/, before + 2)
    }, 30_000)

    test('(added) with the first key only, the second script fails', async () => {
      const a = bed.agents[2]!
      a.serveImaList(signed)
      const r = await add(a, [keys.first.publicKey])
      expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
      await waitFor(a, /^Invalid Quote$/)
      expect((await bed.tenant(['-c', 'cvstatus', '-u', a.uuid])).text).toContain(
        '"last_event_id": "ima.validation.ima-ng.not_in_allowlist"',
      )
    }, 30_000)

    test('script_first.sh changed: Invalid Quote', async () => {
      const a = bed.agents[1]!
      const changed = `${ONE}echo "boom"\n`
      const oldXattr = signed.split('\n')[2]!.split(' ').pop()!
      a.serveImaList(signed + imaEntry(FIRST, sha256(changed), oldXattr).line)
      await waitFor(a, /^Invalid Quote$/)
    }, 30_000)
  })
})
