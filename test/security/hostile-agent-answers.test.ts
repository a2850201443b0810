/**
 * Issue 17, finding 1: no agent answer can end the verifier process. A real `keylime --verifier`
 * child process polls two good simulated agents and one hostile agent per answer of the catalogue
 * (`test/support/hostile-answers.ts`: `{"toString":1}` in `hash_alg`, `enc_alg` and `sign_alg`
 * with a PEM pubkey, a signed quote and an IMA list — the answer that crashed the process through
 * the check worker's inline fallback —, every field with every wrong JSON type, absurd sizes, unsafe
 * numbers, non-object `results`, prototype-looking keys), plus one whose `/version` lists a
 * `{"toString":1}` version. Every answer carries an IMA list, so each round goes through the real
 * check workers. Proves: each hostile agent ends failed with the expected event, is logged once and
 * not polled again; a control agent serving the unmodified answer attests; the good agents keep
 * attesting after all hostile agents failed; the process is alive throughout.
 *
 * @module
 */
import { afterAll, expect, test } from 'bun:test'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAgentCert } from '../support/fleet/agent-cert.ts'
import { enrollAgent } from '../support/fleet/enroll-agent.ts'
import { startFleet } from '../support/fleet/fleet.ts'
import { ImaLog } from '../support/fleet/ima-log.ts'
import { loadCaDir } from '../support/fleet/load-ca-dir.ts'
import { freshSoftTpm, maskToPcrs } from '../support/fleet/soft-tpm.ts'
import { MtlsClient } from '../../src/http/mtls-client.ts'
import { emptyRuntimePolicy } from '../../src/ima/runtime-policy.ts'
import { AGENT_STATES } from '../../src/protocol/agent-states.ts'
import { spawnVerifier } from '../support/control-plane-process.ts'
import { type HostileAgent, startHostileAgent } from '../support/hostile-agent.ts'
import { baseAnswer, type HostileCase, hostileCases } from '../support/hostile-answers.ts'
import { untilValue } from '../support/until.ts'

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined)
})

interface AgentView {
  operational_state: number
  attestation_count: number
  last_event_id: string | null
}

test('hostile agent answers fail their agents only; the verifier keeps attesting the others', async () => {
  const { run, url, dir } = await spawnVerifier({
    KEYLIME_VERIFIER_QUOTE_INTERVAL: '0.5',
    KEYLIME_VERIFIER_RETRY_INTERVAL: '0.2',
    KEYLIME_VERIFIER_MAX_RETRIES: '2',
    KEYLIME_VERIFIER_REQUEST_TIMEOUT: '10',
  })
  cleanups.push(() => run.proc.exitCode === null && run.proc.kill('SIGKILL'))
  const ca = await loadCaDir(join(dir, 'cv_ca'))
  const good = await startFleet({
    count: 2,
    caCertPem: ca.caCertPem,
    listen: 'ports',
    sharedKeys: true,
    keyCachePath: join(tmpdir(), 'keylime-verifier-test-keys.json'),
    imaEntries: 20,
    seed: `hostile-good-${Math.random()}`,
  })
  cleanups.push(() => good.stop())

  // one soft TPM answers for every hostile agent (the verifier does not care that AKs repeat)
  const ima = new ImaLog(20, ['sha256'])
  const tpm = freshSoftTpm()
  tpm.restorePcr('sha256', 10, ima.pcr10('sha256') as Uint8Array)
  const base = (nonce: string, mask: string) =>
    baseAnswer(tpm, nonce, maskToPcrs(Number.parseInt(mask.replace(/^0x/i, ''), 16) || 0), ima.text)
  const cert = await createAgentCert('hostile')
  const cases: (HostileCase & { version?: string; control?: true })[] = [
    ...hostileCases(),
    {
      name: 'version refusal, then /version lists a toString object',
      event: 'internal.verifier.version_not_supported',
      version: '{"supported_version":"2.6","supported_versions":[{"toString":1}]}',
      build: () => '',
    },
    { name: 'control: the unmodified answer', event: 'pass', control: true, build: JSON.stringify },
  ]
  const agents: { id: string; c: (typeof cases)[number]; agent: HostileAgent }[] = []
  for (const [i, c] of cases.entries()) {
    const agent = startHostileAgent({
      caCertPem: ca.caCertPem,
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      version: c.version,
      answer: (q) =>
        c.version !== undefined
          ? { status: 400, text: 'API version not supported: v2.6', results: '{}' }
          : c.build(base(q.nonce, q.mask)),
    })
    cleanups.push(() => agent.stop())
    agents.push({ id: `hostile-${i}`, c, agent })
  }

  const common = {
    verifierUrl: url,
    tls: ca.client,
    ip: '127.0.0.1',
    tpmPolicy: '{"mask":"0x400"}',
    // PCR 10 is quoted, so IMA is evaluated: a policy that excludes every path lets the control
    // agent pass on replay alone (without one, upstream's empty policy fails every file)
    runtimePolicy: Buffer.from(
      JSON.stringify({ ...emptyRuntimePolicy(), excludes: ['.*'] }),
    ).toString('base64'),
  }
  for (const a of good.agents) {
    await enrollAgent({
      ...common,
      uuid: a.uuid,
      port: a.contactPort,
      akTpm: Buffer.from(a.tpm.akTpm2b).toString('base64'),
      mtlsCert: a.mtlsCertPem,
    })
  }
  for (const a of agents) {
    await enrollAgent({
      ...common,
      uuid: a.id,
      port: a.agent.port,
      akTpm: Buffer.from(tpm.akTpm2b).toString('base64'),
      mtlsCert: cert.certPem,
    })
  }

  const client = new MtlsClient({
    cert: ca.client.cert,
    key: ca.client.key,
    ca: typeof ca.client.ca === 'string' ? [ca.client.ca] : ca.client.ca,
    timeoutMs: 10_000,
  })
  const view = async (id: string): Promise<AgentView> => {
    const res = await client.request(`${url}/v2.3/agents/${id}`)
    if (res.status !== 200) throw new Error(`status ${res.status} for ${id}`)
    return res.results as AgentView
  }
  const failed = new Set<number>([AGENT_STATES.INVALID_QUOTE, AGENT_STATES.FAILED])
  const settled = await untilValue(
    async () => {
      expect(run.proc.exitCode).toBeNull()
      const out = new Map<string, AgentView>()
      for (const a of agents) {
        const v = await view(a.id)
        const done = a.c.control ? v.attestation_count >= 2 : failed.has(v.operational_state)
        if (!done) return undefined
        out.set(a.id, v)
      }
      return out
    },
    60_000,
    'every hostile agent failed and the control agent attested',
  )
  const outcome = (a: (typeof agents)[number]) => {
    const v = settled.get(a.id) as AgentView
    return `${a.c.name}: ${a.c.control ? (v.operational_state === AGENT_STATES.GET_QUOTE ? 'pass' : v.operational_state) : v.last_event_id}`
  }
  expect(agents.map(outcome)).toEqual(agents.map((a) => `${a.c.name}: ${a.c.event}`))

  // the good agents keep attesting after every hostile agent failed; hostile ones are not polled
  const quotedAt = agents.map((a) => a.agent.quotes)
  const before = await Promise.all(good.agents.map((a) => view(a.uuid)))
  await untilValue(
    async () => {
      const now = await Promise.all(good.agents.map((a) => view(a.uuid)))
      return now.every(
        (v, i) =>
          v.operational_state === AGENT_STATES.GET_QUOTE &&
          v.attestation_count >= (before[i]?.attestation_count ?? 0) + 3,
      )
        ? true
        : undefined
    },
    30_000,
    'good agents to attest three more times',
  )
  for (const [i, a] of agents.entries()) {
    if (!a.c.control) expect(`${a.id} ${a.agent.quotes}`).toBe(`${a.id} ${quotedAt[i]}`)
  }
  // one warning per failed agent, not one per round
  for (const a of agents) {
    if (a.c.control) continue
    const lines = run
      .output()
      .split('\n')
      .filter((l) => l.includes('attestation failed') && l.includes(`agent_id=${a.id} `))
    expect(`${a.id} ${lines.length}`).toBe(`${a.id} 1`)
  }
  expect(run.proc.exitCode).toBeNull()
  expect(await run.stop()).toBe(0)
}, 120_000)
