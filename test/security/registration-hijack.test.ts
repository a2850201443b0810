/**
 * Issue 17, finding 2: registration hijack from the plain registrar port. On c9aa72c (as in
 * upstream 7.14) `PUT /v2.x/agents/<id>/activate` with a wrong `auth_tag` deleted the
 * registration even of an ACTIVATED agent; then `POST /v2.x/agents/<id>` with the attacker's own
 * EK/AK and an activation from its own TPM succeeded, and the real agent was refused with 403 from
 * then on: two unauthenticated requests took an identity over.
 *
 * Here the victim is a real TPM (swtpm, driven by tpm2-tools as an agent does), the attacker a
 * software TPM of its own, both talking to a registrar on real listeners. Asserted: a wrong tag
 * changes nothing; the attacker's own TPM is refused (403); replaying the victim's public EK/AK
 * with the attacker's contact data leaves the activated record as it was, since only the TPM can
 * answer the new challenge; the victim's restart (re-registration) still works; deleting needs
 * the admin (mTLS) port.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { makeSoftwareAk, makeSoftwareEk, SoftwareAgent } from '../support/software-agent.ts'
import { databaseTargets } from '../support/databases.ts'
import { startTestRegistrar, type TestRegistrar } from '../support/test-registrar.ts'
import { missingTpm2ToolsAgentTools, Tpm2ToolsAgent } from '../support/tpm2-tools-agent.ts'

const missing = missingTpm2ToolsAgentTools()
if (missing.length > 0) console.log(`skipping registration hijack: missing ${missing.join(', ')}`)

let victim: Tpm2ToolsAgent
beforeAll(async () => {
  if (missing.length === 0) victim = await Tpm2ToolsAgent.start()
}, 60_000)
afterAll(async () => {
  await victim?.remove()
})

for (const target of missing.length > 0 ? [] : databaseTargets()) {
  describe(`registration hijack from the plain port (${target.name})`, () => {
    let db: KeylimeDatabase
    let reg: TestRegistrar
    beforeAll(async () => {
      db = await target.open()
      reg = await startTestRegistrar({ database: db })
    })
    afterAll(async () => {
      await reg?.stop()
      await db?.close()
    })

    test('a wrong auth_tag, a foreign TPM and a replay of the public EK/AK take nothing over', async () => {
      const id = `victim-${target.name}`
      const ak = victim.createAk('v')
      const first = await reg.send('POST', `/v2.6/agents/${id}`, victim.body(ak))
      expect(first.status).toBe(200)
      const proof = victim.authTag('v', id, first.json.results.blob as string)
      expect((await reg.send('PUT', `/v2.6/agents/${id}`, { auth_tag: proof })).status).toBe(200)
      const record = (await reg.admin('GET', `/v2.6/agents/${id}`)).json
      expect(record.code).toBe(200)

      // 1. A wrong auth_tag, on every activation route: 400, the record as it was.
      const guess = 'a5'.repeat(48)
      for (const [method, path] of [
        ['PUT', `/v2.6/agents/${id}`],
        ['PUT', `/v2.6/agents/${id}/activate`],
        ['POST', `/v3.0/agents/${id}/activate`],
      ] as const) {
        const r = await reg.send(method, path, { auth_tag: guess })
        expect(r.status).toBe(400)
        expect(await reg.admin('GET', `/v2.6/agents/${id}`)).toEqual({ status: 200, json: record })
      }

      // 2. The attacker's own TPM for the victim's id: 403, nothing to activate.
      const attacker = new SoftwareAgent(makeSoftwareEk('rsa'), makeSoftwareAk('rsa'))
      const hijack = await reg.send('POST', `/v2.6/agents/${id}`, attacker.body())
      expect(hijack.status).toBe(403)
      expect(await reg.admin('GET', `/v2.6/agents/${id}`)).toEqual({ status: 200, json: record })

      // 3. The victim's public EK/AK replayed with the attacker's contact data: a challenge only
      //    the victim's TPM can answer is issued, and the activated record stays as it was.
      const replay = await reg.send(
        'POST',
        `/v2.6/agents/${id}`,
        victim.body(ak, { ip: '10.6.6.6', port: 6666 }),
      )
      expect(replay.status).toBe(200)
      expect(() => attacker.authTag(id, replay.json.results.blob as string)).toThrow()
      expect((await reg.send('PUT', `/v2.6/agents/${id}`, { auth_tag: guess })).status).toBe(400)
      expect(await reg.admin('GET', `/v2.6/agents/${id}`)).toEqual({ status: 200, json: record })

      // 4. Deleting needs the admin port.
      expect((await reg.send('DELETE', `/v2.6/agents/${id}`)).status).toBe(400) // upstream `https_required`
      expect((await reg.admin('GET', `/v2.6/agents/${id}`)).status).toBe(200)

      // 5. The victim restarts (re-registers, as rust-keylime does at every start) and activates.
      const again = await reg.send('POST', `/v2.6/agents/${id}`, victim.body(ak, { port: 9003 }))
      expect(again.status).toBe(200)
      const proof2 = victim.authTag('v', id, again.json.results.blob as string)
      expect((await reg.send('PUT', `/v2.6/agents/${id}`, { auth_tag: proof2 })).status).toBe(200)
      const after = (await reg.admin('GET', `/v2.6/agents/${id}`)).json.results
      expect([after.aik_tpm, after.ip, after.port, after.regcount]).toEqual([
        ak.toString('base64'),
        '127.0.0.1',
        9003,
        2,
      ])
      expect((await reg.admin('DELETE', `/v2.6/agents/${id}`)).status).toBe(200)
    }, 60_000)
  })
}
