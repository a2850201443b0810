/**
 * Step 5 end to end through the verifier: simulated agents serve a REAL guest's IMA list
 * (`test/fixtures/ima/vm/{a,b}`, captured from a Debian 6.1 kernel with `ima_policy=tcb`) with PCR 10
 * replayed from it, and are enrolled with runtime policies made by our own
 * `keylime policy create runtime -m` from that list. Proves, over real mTLS on loopback:
 *
 * - the real list replays to the PCR 10 the guest's swtpm reported (both banks);
 * - the agent reaches GET_QUOTE and attests repeatedly; later rounds ask for `ima_ml_entry` > 0 and
 *   the verifier processes only the new lines (the agent's request log and the verifier's
 *   `quote_progress` state agree); the log growing from snapshot a to b keeps it passing;
 * - a reboot (new `boottime`, log back at entry 0) resets the IMA state and attestation goes on,
 *   both when the agent restarts the list itself and when only `boottime` tells;
 * - one file's digest changed in the policy → INVALID_QUOTE with
 *   `ima.validation.ima-ng.runtime_policy_hash` and the path in the signed revocation notice;
 *   an `excludes` entry for that path (PUT /allowlists + reactivate) makes it pass;
 * - a policy made from snapshot a fails the agent when the log grows to b, with
 *   `ima.validation.ima-ng.not_in_allowlist` naming the new file (new entries are validated);
 * - an `ima-buf` key entry in keyring `.ima`: rejected without a `keyrings` entry, accepted and
 *   learned with `-k`, accepted and not learned with `--ignored-keyrings .ima` (upstream rules).
 *
 * Runs on PGlite and, with TEST_DATABASE_URL, PostgreSQL.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import type { SimAgent } from './support/fleet/sim-agent.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { replayImaList } from '../src/ima/index.ts'
import { runPolicyCreateRuntime } from '../src/policy-tools/index.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import { createTestCa, startTestVerifier } from './support/verifier-harness.ts'
import { databaseTargets } from './support/databases.ts'
import { until } from './support/until.ts'

const VM = join(import.meta.dir, 'fixtures/ima/vm')
const LOG_A = readFileSync(join(VM, 'a/ascii_runtime_measurements'), 'utf8')
const LOG_B = readFileSync(join(VM, 'b/ascii_runtime_measurements'), 'utf8')
/** The `.ima` key entry of the synthetic fixture (an RSA certificate, genuine template hash). */
const KEY_LINE = `${readFileSync(
  join(import.meta.dir, 'fixtures/ima/synthetic/all-templates.txt'),
  'utf8',
)
  .split('\n')
  .find((l) => l.includes(' ima-buf ') && l.includes(' .ima '))}\n`
const LOG_A_KEY = LOG_A + KEY_LINE
const CHANGED = '/usr/bin/busybox'

/** PCR 10 from `tpm2_pcrread sha1:10+sha256:10` in the guest. */
function readPcr10(snapshot: 'a' | 'b'): Record<string, string> {
  const text = readFileSync(join(VM, snapshot, 'pcr10.txt'), 'utf8')
  const out: Record<string, string> = {}
  let bank = ''
  for (const line of text.split('\n')) {
    const b = /^\s*(sha\d+):/.exec(line)
    if (b) bank = b[1]!
    const v = /^\s*10\s*:\s*0x([0-9A-Fa-f]+)/.exec(line)
    if (v) out[bank] = v[1]!.toLowerCase()
  }
  return out
}

/** Runs `keylime policy create runtime` as an operator would; returns the policy JSON. */
async function createPolicy(log: string, extra: string[] = []): Promise<PolicyJson> {
  const dir = mkdtempSync(join(tmpdir(), 'kl-ima-e2e-'))
  writeFileSync(join(dir, 'ascii_runtime_measurements'), log)
  let err = ''
  const rc = await runPolicyCreateRuntime(
    ['-m', 'ascii_runtime_measurements', ...extra, '-o', 'policy.json'],
    { cwd: dir, stdout: { write: () => true }, stderr: { write: (s: string) => (err += s) } },
  )
  if (rc !== 0) throw new Error(`policy create runtime failed (${rc}): ${err}`)
  return JSON.parse(readFileSync(join(dir, 'policy.json'), 'utf8'))
}

/** The parts of a runtime policy the tests edit. */
interface PolicyJson {
  meta: { generator: number }
  digests: Record<string, string[]>
  excludes: string[]
}

/** A revocation notice's `msg` (context is upstream's JSON string). */
interface Notice {
  type: string
  agent_id: string
  event_id: string
  context: string
}

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64')

for (const target of databaseTargets()) {
  describe(`IMA through the verifier with a real guest log (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let fleet: Fleet
    let verifier: VerifierHandle
    let webhook: ReturnType<typeof Bun.serve>
    const notices: Notice[] = []
    let policyB: PolicyJson
    const [MAIN, CHANGED_DIGEST, FROM_A, KEY_NONE, KEY_K, KEY_IGNORED] = [0, 1, 2, 3, 4, 5]

    const api = async (method: string, path: string, body?: unknown) => {
      const res = await verifier.app.request(path, {
        method,
        body: body === undefined ? undefined : JSON.stringify(body),
        headers: body === undefined ? undefined : { 'content-type': 'application/json' },
      })
      const text = await res.text()
      return { status: res.status, body: text ? JSON.parse(text) : null }
    }
    const enrol = async (a: SimAgent, ima: { policy?: unknown; name?: string }) => {
      const r = await api('POST', `/v2.6/agents/${a.uuid}`, {
        // a V makes a pull agent: an enrolment without one is push mode (docs/push-mode.md)
        v: Buffer.alloc(32, 7).toString('base64'),
        cloudagent_ip: a.contactIp,
        cloudagent_port: a.contactPort,
        tpm_policy: JSON.stringify({ mask: '0x0' }),
        runtime_policy: ima.policy === undefined ? '' : b64(ima.policy),
        runtime_policy_name: ima.name ?? '',
        mb_policy: null,
        mb_policy_name: '',
        ima_sign_verification_keys: '',
        metadata: '{}',
        revocation_key: '',
        accept_tpm_hash_algs: ['sha256'],
        accept_tpm_encryption_algs: ['ecc', 'rsa'],
        accept_tpm_signing_algs: ['ecdsa', 'rsassa'],
        ak_tpm: Buffer.from(a.tpm.akTpm2b).toString('base64'),
        mtls_cert: a.mtlsCertPem,
        supported_version: '2.6',
      })
      expect(r.status, JSON.stringify(r.body)).toBe(200)
    }
    const rec = (a: SimAgent) => verifier.loop.records.get(a.uuid)
    const count = (a: SimAgent) => rec(a)?.attestationCount ?? 0
    const agent = (i: number) => fleet.agents[i]!

    beforeAll(async () => {
      const ca = await createTestCa()
      kdb = await target.open()
      webhook = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: async (req) => {
          const n = (await req.json()) as { msg: string }
          notices.push(JSON.parse(n.msg))
          return new Response('ok')
        },
      })
      const caDir = await loadCaDir(ca.caDir)
      fleet = await startFleet({
        count: 6,
        caCertPem: caDir.caCertPem,
        listen: 'ports',
        seed: `ima-e2e-${target.name}`,
        banks: ['sha1'],
      })
      verifier = await startTestVerifier(kdb, ca, {
        quote_interval: '0.2',
        revocations_enabled_revocation_notifications: "['webhook']",
        revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook`,
      })
      policyB = await createPolicy(LOG_B)
      expect(policyB.meta.generator).toBe(3) // LegacyAllowList: the verifier enforces it
      expect(Object.keys(policyB.digests)).toContain('/root/newbin/s3.sh')

      agent(MAIN).serveImaList(LOG_A)
      await enrol(agent(MAIN), { policy: policyB })

      const changed = structuredClone(policyB)
      changed.digests[CHANGED] = ['00'.repeat(32)]
      expect(
        (await api('POST', '/v2.6/allowlists/changed-busybox', { runtime_policy: b64(changed) }))
          .status,
      ).toBe(201)
      agent(CHANGED_DIGEST).serveImaList(LOG_B)
      await enrol(agent(CHANGED_DIGEST), { name: 'changed-busybox' })

      agent(FROM_A).serveImaList(LOG_A)
      await enrol(agent(FROM_A), { policy: await createPolicy(LOG_A) })

      for (const i of [KEY_NONE, KEY_K, KEY_IGNORED]) agent(i).serveImaList(LOG_A_KEY)
      await enrol(agent(KEY_NONE), { policy: await createPolicy(LOG_A_KEY) })
      await enrol(agent(KEY_K), { policy: await createPolicy(LOG_A_KEY, ['-k']) })
      await enrol(agent(KEY_IGNORED), {
        policy: await createPolicy(LOG_A_KEY, ['--ignored-keyrings', '.ima']),
      })
    }, 60_000)

    afterAll(async () => {
      await verifier?.stop(1000)
      await fleet?.stop()
      webhook?.stop(true)
      await kdb?.close()
    })

    test('the real lists replay to the PCR 10 the guest swtpm reported, and the agent quotes it', () => {
      for (const [snap, log] of [
        ['a', LOG_A],
        ['b', LOG_B],
      ] as const) {
        const r = replayImaList(log, ['sha1', 'sha256'])
        const want = readPcr10(snap)
        expect(r.entries).toBe(snap === 'a' ? 59 : 62)
        expect(Buffer.from(r.pcr10.get('sha1')!).toString('hex')).toBe(want.sha1!)
        expect(Buffer.from(r.pcr10.get('sha256')!).toString('hex')).toBe(want.sha256!)
      }
      expect(Buffer.from(agent(CHANGED_DIGEST).tpm.readPcr('sha256', 10)).toString('hex')).toBe(
        readPcr10('b').sha256!,
      )
    })

    test('incremental rounds verify only new entries; the log grows from a to b', async () => {
      const a = agent(MAIN)
      await until(
        () => count(a) >= 3,
        15_000,
        () => `3 attestations, have ${count(a)} state ${rec(a)?.state}`,
      )
      expect(rec(a)!.state).toBe(AGENT_STATES.GET_QUOTE)
      expect((await verifier.service.agents.status(a.uuid)).attestation_status).toBe('PASS')
      // first round: the whole list; later rounds: ima_ml_entry = 59 and nothing new to verify
      expect(a.imaRequests[0]).toEqual({ requested: 0, entry: 0, lines: 59 })
      expect(a.imaRequests.slice(1).length).toBeGreaterThan(0)
      for (const r of a.imaRequests.slice(1))
        expect(r).toEqual({ requested: 59, entry: 59, lines: 0 })
      expect(rec(a)!.ima.nextEntry).toBe(59)
      expect(rec(a)!.ima.quoteProgress).toEqual([0, 0]) // the verifier walked 0 lines

      a.serveImaList(LOG_B)
      const seen = a.imaRequests.length
      await until(
        () =>
          a.imaRequests.slice(seen).some((r) => r.requested === 62) && rec(a)!.ima.nextEntry === 62,
        10_000,
        () => `entry 62, requests ${JSON.stringify(a.imaRequests.slice(seen))}`,
      )
      const after = a.imaRequests.slice(seen)
      expect(after[0]).toEqual({ requested: 59, entry: 59, lines: 3 })
      expect(after.some((r) => r.requested === 0)).toBe(false)
      expect(rec(a)!.state).toBe(AGENT_STATES.GET_QUOTE)
      expect(rec(a)!.lastEventId).toBeNull()
      // the state survives in the database as upstream's columns
      await verifier.loop.flush()
      const row = await verifier.store.getAgent(a.uuid)
      expect(row!.next_ima_ml_entry).toBe(62)
      expect(row!.attestation_count).toBeGreaterThanOrEqual(3)
    }, 30_000)

    test('a reboot resets the IMA state and attestation continues to PASS', async () => {
      const a = agent(MAIN)
      // reboot with the list back at snapshot a: the agent restarts at 0 itself (62 > 59 lines)
      let seen = a.imaRequests.length
      a.reboot({ imaList: LOG_A })
      await until(
        () => a.imaRequests.slice(seen).some((r) => r.entry === 0) && rec(a)!.ima.nextEntry === 59,
        10_000,
        () => `restart, requests ${JSON.stringify(a.imaRequests.slice(seen))}`,
      )
      expect(a.imaRequests.slice(seen)[0]).toEqual({ requested: 62, entry: 0, lines: 59 })
      expect(rec(a)!.ima.bootTime).toBe(a.bootTime)
      // reboot again to a list of the same length: only boottime tells the verifier
      const before = count(a)
      seen = a.imaRequests.length
      a.reboot({ imaList: LOG_A })
      await until(
        () => a.imaRequests.slice(seen).some((r) => r.requested === 0) && count(a) > before + 1,
        10_000,
        () => `boottime reset, requests ${JSON.stringify(a.imaRequests.slice(seen))}`,
      )
      const rs = a.imaRequests.slice(seen)
      expect(rs[0]).toEqual({ requested: 59, entry: 59, lines: 0 }) // seen as a reboot
      expect(rs[1]).toEqual({ requested: 0, entry: 0, lines: 59 }) // full list next
      expect(rec(a)!.ima.bootTime).toBe(a.bootTime)
      expect(rec(a)!.state).toBe(AGENT_STATES.GET_QUOTE)
      expect((await verifier.service.agents.status(a.uuid)).attestation_status).toBe('PASS')
    }, 30_000)

    test('one changed digest fails the agent with the path; an exclude makes it pass', async () => {
      const a = agent(CHANGED_DIGEST)
      await until(
        () => rec(a)?.state === AGENT_STATES.INVALID_QUOTE,
        10_000,
        () => `INVALID_QUOTE, state ${rec(a)?.state}`,
      )
      expect(rec(a)!.lastEventId).toBe('ima.validation.ima-ng.runtime_policy_hash')
      expect(count(a)).toBe(0)
      await until(
        () => notices.some((n) => n.agent_id === a.uuid),
        10_000,
        () => 'notice',
      )
      const n = notices.find((x) => x.agent_id === a.uuid)!
      expect(n.type).toBe('revocation')
      expect(n.event_id).toBe('ima.validation.ima-ng.runtime_policy_hash')
      const ctx = JSON.parse(n.context)
      expect(ctx.path).toBe(CHANGED)
      expect(ctx.got).toBe(/sha256:([0-9a-f]+) \/usr\/bin\/busybox/.exec(LOG_B)![1])
      expect(ctx.expected).toEqual(['00'.repeat(32)])
      const st = await verifier.service.agents.status(a.uuid)
      expect(st.attestation_status).toBe('FAIL')

      // the operator adds an exclude for that path: PUT the policy, reactivate → PASS
      const fixed = structuredClone(policyB)
      fixed.digests[CHANGED] = ['00'.repeat(32)]
      fixed.excludes = ['^/usr/bin/busybox$']
      const put = await api('PUT', '/v2.6/allowlists/changed-busybox', {
        runtime_policy: b64(fixed),
      })
      expect(put.status).toBe(201)
      expect((await api('PUT', `/v2.6/agents/${a.uuid}/reactivate`)).status).toBe(200)
      await until(
        () => count(a) >= 2,
        10_000,
        () => `PASS after exclude, state ${rec(a)?.state}`,
      )
      expect(rec(a)!.state).toBe(AGENT_STATES.GET_QUOTE)
      expect(rec(a)!.lastEventId).toBeNull()
    }, 30_000)

    test('a policy of snapshot a rejects the entries the log gains (not_in_allowlist, path)', async () => {
      const a = agent(FROM_A)
      await until(
        () => count(a) >= 2,
        10_000,
        () => `PASS on a, state ${rec(a)?.state}`,
      )
      a.serveImaList(LOG_B)
      await until(
        () => rec(a)?.state === AGENT_STATES.INVALID_QUOTE,
        10_000,
        () => `INVALID_QUOTE after growth, state ${rec(a)?.state}`,
      )
      expect(rec(a)!.lastEventId).toBe('ima.validation.ima-ng.not_in_allowlist')
      expect(a.imaRequests.at(-1)).toEqual({ requested: 59, entry: 59, lines: 3 })
      await until(
        () => notices.some((n) => n.agent_id === a.uuid),
        10_000,
        () => 'notice',
      )
      const ctx = JSON.parse(notices.find((x) => x.agent_id === a.uuid)!.context)
      expect(ctx.path).toBe('/root/newbin/s1.sh')
      expect(ctx.message).toBe('File not found in allowlist: /root/newbin/s1.sh')
    }, 30_000)

    test('ima-buf key entries: keyrings and ignored_keyrings behave as upstream', async () => {
      const none = agent(KEY_NONE)
      const withK = agent(KEY_K)
      const ignored = agent(KEY_IGNORED)
      await until(
        () =>
          rec(none)?.state === AGENT_STATES.INVALID_QUOTE &&
          count(withK) >= 2 &&
          count(ignored) >= 2,
        15_000,
        () => `key agents ${[none, withK, ignored].map((x) => `${rec(x)?.state}/${count(x)}`)}`,
      )
      // no keyrings entry: the key is "not in allowlist" under its keyring name
      expect(rec(none)!.lastEventId).toBe('ima.validation.ima-ng.not_in_allowlist')
      await until(
        () => notices.some((n) => n.agent_id === none.uuid),
        10_000,
        () => 'notice',
      )
      expect(JSON.parse(notices.find((x) => x.agent_id === none.uuid)!.context).path).toBe('.ima')
      // -k: accepted, and the key is learned for later ima-sig entries
      expect(rec(withK)!.state).toBe(AGENT_STATES.GET_QUOTE)
      expect([...rec(withK)!.ima.learnedKeyrings.keys()]).toEqual(['.ima'])
      expect(rec(withK)!.ima.learnedKeyrings.get('.ima')!.keys.size).toBe(1)
      // ignored keyring: accepted, not learned
      expect(rec(ignored)!.state).toBe(AGENT_STATES.GET_QUOTE)
      expect(rec(ignored)!.ima.learnedKeyrings.size).toBe(0)
    }, 30_000)
  })
}
