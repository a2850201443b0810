/**
 * Issue 17, finding 5: a database failure during enrolment or registration must not put a secret
 * in any log line or response. drizzle's error carries every query parameter, and PostgreSQL
 * quotes values in its messages, `detail`, `where` and `hint`; before the fix a failed enrolment
 * INSERT logged V and the revocation private key, a failed activation the challenge key.
 *
 * Each database failure is forced for real on the table the statement writes: a trigger that
 * raises quoting the new row, a CHECK constraint (`Failing row contains (…)`), a value too long,
 * a column turned into `jsonb` (`invalid input syntax for type json`, `Token "…" is invalid`),
 * and on PostgreSQL a connection the server drops in the middle of the statement. Every log line
 * (text and JSON format) and every response body is then searched for V, U, K, the revocation
 * key, the challenge, its base64 and the auth tag.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { sql } from 'drizzle-orm'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import type { KeylimeApp } from '../../src/http/create-app.ts'
import { setLogSink } from '../../src/log/logger.ts'
import {
  activateCredentialSoftware,
  makeSoftwareAk,
  makeSoftwareEk,
  SoftwareAgent,
} from '../support/software-agent.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { createTestCa, startTestVerifier } from '../support/verifier-harness.ts'
import { databaseTargets } from '../support/databases.ts'
import { registrarApps } from '../support/registrar-apps.ts'

/** One way to make the statement writing `table` fail; `undo` restores the table. */
interface Failure {
  name: string
  postgresOnly?: boolean
  /** Also fails an UPDATE of an existing row (activation). */
  updates: boolean
  apply(table: string, column: string): string[]
  undo(table: string, column: string): string[]
}

const FAILURES: Failure[] = [
  {
    name: 'a trigger raising with the new values',
    updates: true,
    apply: (t, c) => [
      `CREATE FUNCTION kl_test_reject() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'rejected % %', NEW.${c}, row_to_json(NEW)
          USING DETAIL = NEW.${c}, HINT = row_to_json(NEW)::text;
      END $$`,
      `CREATE TRIGGER kl_test_reject BEFORE INSERT OR UPDATE ON ${t}
        FOR EACH ROW EXECUTE FUNCTION kl_test_reject()`,
    ],
    undo: (t) => [`DROP TRIGGER kl_test_reject ON ${t}`, 'DROP FUNCTION kl_test_reject()'],
  },
  {
    name: 'a CHECK constraint violation',
    updates: true,
    apply: (t) => [`ALTER TABLE ${t} ADD CONSTRAINT kl_test_reject CHECK (false) NOT VALID`],
    undo: (t) => [`ALTER TABLE ${t} DROP CONSTRAINT kl_test_reject`],
  },
  {
    name: 'a value too long for its column',
    updates: false,
    apply: (t, c) => [`ALTER TABLE ${t} ALTER COLUMN ${c} TYPE varchar(8) USING left(${c}, 8)`],
    undo: (t, c) => [`ALTER TABLE ${t} ALTER COLUMN ${c} TYPE text`],
  },
  {
    name: 'a value that is not JSON for a jsonb column',
    updates: true,
    apply: (t, c) => [`ALTER TABLE ${t} ALTER COLUMN ${c} TYPE jsonb USING to_jsonb(${c})`],
    undo: (t, c) => [`ALTER TABLE ${t} ALTER COLUMN ${c} TYPE text USING ${c} #>> '{}'`],
  },
  {
    name: 'a connection dropped during the statement',
    postgresOnly: true,
    updates: true,
    apply: (t) => [
      `CREATE FUNCTION kl_test_reject() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_terminate_backend(pg_backend_pid());
        RETURN NEW;
      END $$`,
      `CREATE TRIGGER kl_test_reject BEFORE INSERT OR UPDATE ON ${t}
        FOR EACH ROW EXECUTE FUNCTION kl_test_reject()`,
    ],
    undo: (t) => [`DROP TRIGGER kl_test_reject ON ${t}`, 'DROP FUNCTION kl_test_reject()'],
  },
]

/** Everything a failed request wrote: log lines and the response. */
interface Outcome {
  status: number
  body: string
  lines: string[]
}

/** Fails when any line or the body holds a secret (or the parameter dump of a query error). */
function expectNoSecret(o: Outcome, secrets: Record<string, string>): void {
  for (const text of [o.body, ...o.lines]) {
    for (const [what, secret] of Object.entries(secrets)) {
      expect(text.includes(secret), `${what} in: ${text.slice(0, 400)}`).toBe(false)
    }
    expect(text).not.toContain('params:')
    expect(text).not.toContain('Failed query')
    expect(text).not.toContain('Failing row contains')
  }
}

/** Secrets to look for in a PEM: the whole text and each line of its body. */
function pemParts(pem: string, name: string): Record<string, string> {
  const out: Record<string, string> = { [name]: pem }
  pem
    .split('\n')
    .filter((l) => l.length >= 40 && !l.startsWith('-----'))
    .forEach((l, i) => {
      out[`${name} line ${i + 1}`] = l
    })
  return out
}

/** base64 texts in `text` that decode to 32 alphanumerics: an activation challenge key. */
function challengeKeysIn(text: string): string[] {
  return (text.match(/[A-Za-z0-9+/]{43}=/g) ?? []).filter((b) =>
    /^[A-Za-z0-9]{32}$/.test(Buffer.from(b, 'base64').toString('latin1')),
  )
}

for (const target of databaseTargets()) {
  describe(`database errors keep secrets out of logs and answers (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let verifier: VerifierHandle
    let registrarHttp: KeylimeApp
    const lines: string[] = []
    let restore: ReturnType<typeof setLogSink>
    const failures = FAILURES.filter((f) => !f.postgresOnly || target.name === 'postgresql')
    const ak = Buffer.from(makeSoftwareAk().tpm2b).toString('base64')
    const agent = new SoftwareAgent(makeSoftwareEk('ecc'), makeSoftwareAk('ecc'))
    let n = 0

    beforeAll(async () => {
      restore = setLogSink((l) => lines.push(l), false)
      kdb = await target.open()
      verifier = await startTestVerifier(kdb, await createTestCa(), { enable_agent_mtls: 'False' })
      registrarHttp = registrarApps(kdb).http
    }, 60_000)
    afterAll(async () => {
      setLogSink(restore)
      await verifier?.stop(200)
      await kdb?.close() // up to 5 s: postgres.js waits for a connection the server dropped
    }, 20_000)

    const ddl = async (statements: string[]) => {
      for (const s of statements) await kdb.db.execute(sql.raw(s))
    }

    /** Runs `request` with fresh log capture in text, then JSON lines. */
    async function capture(
      json: boolean,
      request: () => Response | Promise<Response>,
    ): Promise<Outcome> {
      lines.length = 0
      setLogSink((l) => lines.push(l), json)
      const res = await request()
      const body = await res.text()
      setLogSink((l) => lines.push(l), false)
      return { status: res.status, body, lines: [...lines] }
    }

    for (const failure of failures) {
      test(`enrolment: ${failure.name}`, async () => {
        for (const json of [false, true]) {
          const id = `secret-enrol-${++n}`
          const k = randomBytes(32)
          const u = randomBytes(32)
          const v = Buffer.from(k.map((b, i) => b ^ (u[i] as number)))
          const revocationKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
            .privateKey.export({ type: 'pkcs8', format: 'pem' })
            .toString()
          const body = {
            v: v.toString('base64'),
            cloudagent_ip: '127.0.0.1',
            cloudagent_port: 9,
            tpm_policy: JSON.stringify({ mask: '0x0' }),
            runtime_policy: '',
            runtime_policy_name: '',
            runtime_policy_key: '',
            mb_policy: null,
            mb_policy_name: '',
            ima_sign_verification_keys: '',
            metadata: '{}',
            revocation_key: revocationKey,
            accept_tpm_hash_algs: ['sha256'],
            accept_tpm_encryption_algs: ['rsa', 'ecc'],
            accept_tpm_signing_algs: ['rsassa', 'ecdsa'],
            ak_tpm: ak,
            mtls_cert: null,
            supported_version: '2.6',
          }
          await ddl(failure.apply('verifiermain', 'v'))
          let out: Outcome
          try {
            out = await capture(json, () =>
              verifier.app.request(`/v2.6/agents/${id}`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify(body),
              }),
            )
          } finally {
            await ddl(failure.undo('verifiermain', 'v'))
          }
          expect(out.status).toBeGreaterThanOrEqual(500)
          expect(out.lines.length).toBeGreaterThan(0) // the failure was logged…
          expectNoSecret(out, {
            // …without any of these
            V: v.toString('base64'),
            'V (hex)': v.toString('hex'),
            U: u.toString('base64'),
            K: k.toString('base64'),
            ...pemParts(revocationKey, 'revocation key'),
          })
          expect(await verifier.store.getAgent(id)).toBeUndefined() // and nothing half-written
        }
      }, 30_000)

      test(`registration: ${failure.name}`, async () => {
        for (const json of [false, true]) {
          const id = `secret-reg-${++n}`
          await ddl(failure.apply('registrarmain', 'key'))
          let out: Outcome
          try {
            out = await capture(json, () =>
              registrarHttp.request(`/v2.6/agents/${id}`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify(agent.body()),
              }),
            )
          } finally {
            await ddl(failure.undo('registrarmain', 'key'))
          }
          expect(out.status).toBeGreaterThanOrEqual(500)
          expect(out.lines.length).toBeGreaterThan(0)
          // the challenge of a registration that failed is never known outside: look for its shape
          for (const text of [out.body, ...out.lines]) expect(challengeKeysIn(text)).toEqual([])
          expectNoSecret(out, {})
        }
      }, 30_000)

      if (!failure.updates) continue
      test(`activation: ${failure.name}`, async () => {
        for (const json of [false, true]) {
          const id = `secret-act-${++n}`
          const reg = await registrarHttp.request(`/v2.6/agents/${id}`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(agent.body()),
          })
          expect(reg.status).toBe(200)
          const blob = ((await reg.json()) as { results: { blob: string } }).results.blob
          const challenge = Buffer.from(activateCredentialSoftware(agent.ek, agent.akName, blob))
          const authTag = agent.authTag(id, blob)
          await ddl(failure.apply('registrarmain', 'key'))
          let out: Outcome
          try {
            out = await capture(json, () =>
              registrarHttp.request(`/v2.6/agents/${id}`, {
                method: 'PUT',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ auth_tag: authTag }),
              }),
            )
          } finally {
            await ddl(failure.undo('registrarmain', 'key'))
          }
          expect(out.status).toBeGreaterThanOrEqual(500)
          expect(out.lines.length).toBeGreaterThan(0)
          expectNoSecret(out, {
            challenge: challenge.toString('latin1'),
            'challenge key (base64)': challenge.toString('base64'),
            auth_tag: authTag,
          })
        }
      }, 30_000)
    }
  })
}
