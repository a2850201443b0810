/**
 * Mirror of keylime-tests `functional/tenant_api_version_negotiation`
 * (RedHat-SP-Security/keylime-tests `ab163590314546d90cdcd7a89e56d3d0b562f4ec`), its agent
 * phases: the control plane (child process) and simulated agents whose enabled API versions are
 * limited as upstream's `limeUpdateConf agent api_versions '"2.1, 2.2"'` does.
 *
 Mirrored: "common API version negotiation with the agent" — `keylime_tenant -c add --verify`
 * with an agent enabling 2.1 and 2.2 negotiates the newest version both know and completes
 * (upstream's tenant lists 2.1, 2.3, 2.5 and so picks 2.1; keylime-ts's tenant speaks 2.0–2.6 and
 * picks 2.2), and the agent then attests; the `cvlist` / `reglist` of the verifier and registrar
 * phases go through.
 *
 * Not mirrored: every phase that patches upstream's `api_version.py` to give the verifier,
 * registrar and tenant different version lists, including "incorrect API version for the agent"
 * (the tenant's list is changed there) — keylime-ts has no setting for the versions a service or
 * the tenant speaks. An agent enabling only versions the tenant lacks cannot be built here
 * either: it could not register (the registrar answers 404 on v3 registration until push mode).
 * The "has no compatible API" refusal itself is in `src/tenant/add-agent.ts` (`negotiateAgent`).
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startTenantBed, type TenantBed } from '../support/tenant-bed.ts'
import { untilValue } from '../support/until.ts'

describe('keylime-tests functional/tenant_api_version_negotiation', () => {
  let bed: TenantBed
  const payload = join(mkdtempSync(join(tmpdir(), 'kl-kt-api-')), 'hostname')

  beforeAll(async () => {
    writeFileSync(payload, 'keylime-tests\n')
    bed = await startTenantBed({
      count: 1,
      seed: `kt-api-${process.pid}`,
      env: { KEYLIME_VERIFIER_QUOTE_INTERVAL: '0.3' },
      agentApiVersions: () => ['2.1', '2.2'],
    })
  }, 60_000)

  afterAll(async () => {
    await bed?.stop()
  })

  test('cvlist and reglist negotiate with the verifier and the registrar', async () => {
    for (const cmd of ['cvlist', 'reglist']) {
      const r = await bed.tenant(['-c', cmd])
      expect({ cmd, code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({
        cmd,
        code: 0,
        err: '',
      })
    }
  })

  test('an agent enabling 2.1 and 2.2: add --verify at 2.2, and it attests', async () => {
    const a = bed.agents[0]!
    const r = await bed.tenant([
      ...bed.agentArgs(a),
      '-f',
      payload,
      '--verify',
      '-c',
      'add',
      '--json',
    ])
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
    expect(r.doc.results).toMatchObject({
      agent_id: a.uuid,
      agent_api_version: '2.2',
      verified: true,
    })
    await untilValue(
      async () => {
        const s = await bed.tenant(['-c', 'cvstatus', '-u', a.uuid, '--json'])
        const st = (s.doc.results as Record<string, Record<string, unknown>>)[a.uuid]!
        return st.operational_state === 'Get Quote' && Number(st.attestation_count) >= 1
      },
      20_000,
      'an attestation',
    )
    expect((await bed.tenant(['-c', 'delete', '-u', a.uuid])).code).toBe(0)
  }, 30_000)
})
