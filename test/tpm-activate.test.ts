/**
 * Integration: our software MakeCredential is accepted by a real (software) TPM.
 *
 * Starts swtpm on a random loopback port pair, creates RSA-2048, ECC P-256 and (high-range) ECC P-384 EKs and AKs with
 * tpm2-tools, runs `makeCredential` on the EK's TPM2B_PUBLIC and the AK name, writes the
 * tpm2-tools credential file and lets `tpm2_activatecredential` (EK policy session satisfied by
 * PolicySecret(endorsement)) recover the credential. Skips with a printed reason when swtpm or
 * tpm2-tools are missing.
 */

import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { serializeCredentialBlob } from '../src/tpm/credential-blob.ts'
import { makeCredential } from '../src/tpm/make-credential.ts'
import { computeName, parseTpm2bPublic } from '../src/tpm/public-area.ts'
import { type BareSwtpm, startBareSwtpm } from './support/swtpm.ts'

const TOOLS = [
  'swtpm',
  'tpm2_createek',
  'tpm2_createak',
  'tpm2_activatecredential',
  'tpm2_startauthsession',
  'tpm2_policysecret',
  'tpm2_flushcontext',
]
const missing = TOOLS.filter((t) => Bun.which(t) === null)
const hasSwtpm = missing.length === 0
if (!hasSwtpm) {
  console.log(
    `skipping tpm-activate tests: missing ${missing.join(', ')} (apt-get install swtpm tpm2-tools)`,
  )
}

let dir = ''
let port = 0
let swtpm: BareSwtpm | undefined

/** Runs a tpm2-tools command against our swtpm; throws with stderr on failure. */
function tpm2(args: string[]): { ok: boolean; stderr: string } {
  const p = Bun.spawnSync(args, {
    cwd: dir,
    env: { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return { ok: p.exitCode === 0, stderr: p.stderr.toString() }
}

function must(args: string[]): void {
  const r = tpm2(args)
  if (!r.ok) throw new Error(`${args.join(' ')} failed: ${r.stderr}`)
}

/** Flushes transient objects and sessions: swtpm has no resource manager and 3 object slots. */
function flushAll(): void {
  tpm2(['tpm2_flushcontext', '-t'])
  tpm2(['tpm2_flushcontext', '-s'])
}

beforeAll(async () => {
  if (!hasSwtpm) return
  dir = mkdtempSync(join(tmpdir(), 'keylime-activate-'))
  swtpm = await startBareSwtpm(dir)
  port = swtpm.port
}, 15_000)

afterAll(async () => {
  await swtpm?.remove()
})

/** Creates EK + AK of the given type and returns the EK TPM2B_PUBLIC and the AK name. */
function createKeys(ekAlg: string, alg: 'rsa' | 'ecc'): { ekPub: Uint8Array; akName: Uint8Array } {
  flushAll()
  must(['tpm2_createek', '-G', ekAlg, '-c', 'ek.ctx', '-u', 'ek.pub'])
  flushAll()
  const scheme = alg === 'rsa' ? 'rsassa' : 'ecdsa'
  must([
    'tpm2_createak',
    '-C',
    'ek.ctx',
    '-c',
    'ak.ctx',
    '-G',
    alg,
    '-g',
    'sha256',
    '-s',
    scheme,
    '-u',
    'ak.pub',
    '-n',
    'ak.name',
  ])
  flushAll()
  return {
    ekPub: readFileSync(join(dir, 'ek.pub')),
    akName: readFileSync(join(dir, 'ak.name')),
  }
}

/**
 * tpm2_activatecredential; low-range EKs (policy A, no userWithAuth) are authorized with a policy
 * session satisfied by PolicySecret(endorsement), high-range EKs (userWithAuth) with their empty
 * password. Returns the credential, or undefined if the TPM refused.
 */
function activate(blob: Uint8Array, policy: boolean): Uint8Array | undefined {
  writeFileSync(join(dir, 'cred.blob'), blob)
  rmSync(join(dir, 'cred.out'), { force: true })
  flushAll()
  const auth: string[] = []
  if (policy) {
    must(['tpm2_startauthsession', '--policy-session', '-S', 'session.ctx'])
    must(['tpm2_policysecret', '-S', 'session.ctx', '-c', 'e'])
    auth.push('-P', 'session:session.ctx')
  }
  const r = tpm2([
    'tpm2_activatecredential',
    '-c',
    'ak.ctx',
    '-C',
    'ek.ctx',
    '-i',
    'cred.blob',
    '-o',
    'cred.out',
    ...auth,
  ])
  flushAll()
  return r.ok ? readFileSync(join(dir, 'cred.out')) : undefined
}

describe.skipIf(!hasSwtpm)('MakeCredential accepted by swtpm ActivateCredential', () => {
  const CASES = [
    { ekAlg: 'rsa', alg: 'rsa', label: 'RSA-2048 EK (L-1)', nameAlg: 0x000b, policy: true },
    { ekAlg: 'ecc', alg: 'ecc', label: 'ECC P-256 EK (L-2)', nameAlg: 0x000b, policy: true },
    {
      ekAlg: 'ecc384',
      alg: 'ecc',
      label: 'ECC P-384 EK (H-3: SHA-384, AES-256)',
      nameAlg: 0x000c,
      policy: false,
    },
  ] as const
  for (const c of CASES) {
    test(`${c.label}: tpm2_activatecredential recovers our credential`, () => {
      const { ekPub, akName } = createKeys(c.ekAlg, c.alg)
      const ek = parseTpm2bPublic(ekPub)
      expect(ek.type).toBe(c.alg)
      expect(ek.nameAlg).toBe(c.nameAlg)
      // The AK name tpm2-tools reports equals computeName() of the AK public we can parse.
      const akPub = parseTpm2bPublic(readFileSync(join(dir, 'ak.pub')))
      expect(Buffer.from(computeName(akPub)).toString('hex')).toBe(
        Buffer.from(akName).toString('hex'),
      )
      const secret = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345')
      const blob = serializeCredentialBlob(makeCredential(ek, akName, secret))
      const out = activate(blob, c.policy)
      expect(out).toBeDefined()
      expect(Buffer.from(out!).toString()).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345')

      // Bound to another name: the TPM's integrity check must fail.
      const other = Uint8Array.from(akName)
      other[5] = other[5]! ^ 1
      expect(
        activate(serializeCredentialBlob(makeCredential(ek, other, secret)), c.policy),
      ).toBeUndefined()
    })
  }
})
