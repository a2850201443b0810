/**
 * The attestation halves of keylime-tests `functional/push-authentication-token-lifecycle` and
 * `functional/push-authentication-persistence` (RedHat-SP-Security/keylime-tests
 * `ab163590314546d90cdcd7a89e56d3d0b562f4ec`; their session halves are in
 * test/push-sessions.test.ts), with test/support/push-bed.ts: verifier, registrar, our push agent
 * on swtpm with an IMA list, `keylime_tenant` in-process.
 *
 * - token-lifecycle "token extension on successful attestations": `session_lifetime = 60`,
 *   `extend_token_on_attestation = true`; the verifier restarts; the agent attests on with the same
 *   token (no new session, no 401), and the verifier logs "Extended auth token for agent '<id>'".
 * - token-lifecycle "automatic token re-authentication": `session_lifetime = 3`, no extension;
 *   the agent gets new tokens and keeps passing. **Different**: our agent renews its token before
 *   `token_expires_at` (docs/push-mode.md) where rust-keylime waits for the 401 upstream greps for.
 * - persistence "token remains valid on failed attestations": a script not in the policy → failed
 *   verifications; the agent keeps its token (no new session, no 401), the token is not extended,
 *   and it keeps submitting; `keylime_tenant -c update --push-model` with a policy that allows the
 *   script → attestations pass again.
 *
 * @module
 */
import 'reflect-metadata'
import { afterEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setLogLevel } from '../../src/log/logger.ts'
import { runPolicyCreateRuntime } from '../../src/policy-tools/index.ts'
import { databaseTargets } from '../support/databases.ts'
import { imaNgLine, testScript } from '../support/ima-ng-line.ts'
import { type PushBed, startPushBed } from '../support/push-bed.ts'
import { missingSwtpmTools } from '../support/swtpm.ts'
import { until } from '../support/until.ts'

const missing = missingSwtpmTools(['tpm2_pcrextend'])
if (missing.length > 0) console.log(`skipping push-authentication mirrors: ${missing.join(', ')}`)

const AGENT_ID = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
const INIT = testScript('init')
const BAD = testScript('bad-script')

describe.skipIf(missing.length > 0)('keylime-tests push-authentication attestation halves', () => {
  let bed: PushBed | undefined
  let port = 19560

  afterEach(async () => {
    setLogLevel('INFO')
    await bed?.stop()
    bed = undefined
  })

  /** A bed with the agent enrolled (`add --push-model` with a policy allowing `allowed`). */
  async function enrolled(verifier: Record<string, string>) {
    bed = await startPushBed({
      database: await databaseTargets()[0]!.open(),
      port: port++,
      agentId: AGENT_ID,
      ima: true,
      verifier: { quote_interval: '1', ...verifier },
    })
    bed.measure(INIT.path, INIT.digest)
    await bed.startAgent()
    const add = await bed.tenant([
      '-u',
      AGENT_ID,
      '--runtime-policy',
      await policy([INIT]),
      '-c',
      'add',
      '--push-model',
    ])
    expect({ code: add.code, err: add.code === 0 ? '' : add.err + add.out }).toEqual({
      code: 0,
      err: '',
    })
    await bed.statusIs('PASS', 15_000)
    return bed
  }
  /** limeCreateTestPolicy: a runtime policy allowing `files`. */
  async function policy(files: { path: string; digest: string }[]): Promise<string> {
    const source = join(bed!.work, `policy-source-${files.length}`)
    writeFileSync(source, files.map((f) => imaNgLine(f.path, f.digest)).join(''))
    const out = join(bed!.work, `policy-${files.length}.json`)
    const rc = await runPolicyCreateRuntime(['-m', source, '-o', out], {
      cwd: bed!.work,
      stdout: { write: () => undefined },
      stderr: { write: () => undefined },
    })
    expect(rc).toBe(0)
    return out
  }
  const lines = (b: PushBed, from: number, re: RegExp) =>
    b.logs.slice(from).filter((l) => re.test(l))
  const passed = new RegExp(
    `Attestation \\d+ for agent '${AGENT_ID}' successfully passed verification`,
  )
  const failed = new RegExp(`Attestation \\d+ for agent '${AGENT_ID}' failed verification`)
  const extended = new RegExp(`Extended auth token for agent '${AGENT_ID}'`)
  const unauthorized = (b: PushBed) => b.sent.filter((s) => s.endsWith(' 401'))

  test('token-lifecycle: successful attestations extend the token, across a verifier restart', async () => {
    // upstream logs the extension at DEBUG, the level keylime-tests run the verifier with
    setLogLevel('DEBUG')
    const b = await enrolled({ session_lifetime: '60', extend_token_on_attestation: 'true' })
    const sessions = b.sessions()
    expect(lines(b, 0, extended).length).toBeGreaterThan(0)
    await b.restartVerifier()
    const mark = b.logs.length
    await until(() => lines(b, mark, passed).length >= 2, 10_000, 'attestations after the restart')
    expect(lines(b, mark, extended).length).toBeGreaterThan(0)
    expect(b.sessions()).toBe(sessions)
    expect(unauthorized(b)).toEqual([])
  }, 60_000)

  test('token-lifecycle: without extension the agent re-authenticates on its own', async () => {
    const b = await enrolled({ session_lifetime: '3', extend_token_on_attestation: 'False' })
    const sessions = b.sessions()
    const mark = b.logs.length
    await until(() => b.sessions() >= sessions + 2, 12_000, 'new sessions')
    expect(lines(b, mark, extended)).toEqual([])
    expect(lines(b, mark, failed)).toEqual([])
    expect((await b.status()).attestation_status).toBe('PASS')
  }, 60_000)

  test('persistence: the token stays valid through failed attestations; update restores PASS', async () => {
    const b = await enrolled({})
    const sessions = b.sessions()
    const mark = b.logs.length
    b.measure(BAD.path, BAD.digest)
    await until(() => lines(b, mark, failed).length >= 2, 10_000, 'failed attestations')
    expect(b.sessions()).toBe(sessions)
    expect(unauthorized(b)).toEqual([])
    expect(lines(b, mark, extended)).toEqual([]) // extended on success only
    expect((await b.status()).attestation_status).toBe('FAIL')

    const update = await b.tenant([
      ...['-u', AGENT_ID, '--runtime-policy', await policy([INIT, BAD])],
      ...['-c', 'update', '--push-model'],
    ])
    expect({ code: update.code, err: update.code === 0 ? '' : update.err + update.out }).toEqual({
      code: 0,
      err: '',
    })
    const after = b.logs.length
    await until(() => lines(b, after, passed).length > 0, 15_000, 'passing again')
  }, 60_000)
})
