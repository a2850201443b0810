/**
 * The verifier's EAR signing keys: ES256 (P-256) private keys, one PKCS#8 PEM file each (mode
 * 0600), in `<KEYLIME_DIR>/ear_keys/` (mode 0700) beside `cv_ca`. The newest file signs; the
 * newest {@link EAR_KEYS_KEPT} are served in the JWKS, so a token signed before a rotation keeps
 * verifying for two more rotations. {@link rotateEarKey} (`keylime ear rotate`) adds a key and
 * deletes those past the window; a running verifier notices within a second ({@link EarKeyRing}).
 *
 * @module
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto'
import { readdir, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ensureCaDir, readBounded, SECRET_FILE_MODE, writeFileAtomic } from '../../ca/ca-files.ts'
import { type PublicJwk, publicJwkOf } from './sign-jwt.ts'

/** The key directory's name under `KEYLIME_DIR`. */
export const EAR_KEY_DIR = 'ear_keys'

/** Keys in the JWKS: the active one and the two before it. */
export const EAR_KEYS_KEPT = 3

/** How often (ms) a running verifier looks for a rotation. */
const RELOAD_CHECK_MS = 1000

const KEY_FILE = /^ear-es256-\d{8}T\d{9}Z-[0-9a-f]{8}\.pem$/

/** `<keylimeDir>/ear_keys`. */
export function earKeyDir(keylimeDir: string): string {
  return join(keylimeDir, EAR_KEY_DIR)
}

/** A file name that sorts by creation time: `ear-es256-20260101T120000000Z-<random>.pem`. */
function keyFileName(now: Date): string {
  const stamp = now.toISOString().replace(/[-:.]/g, '')
  return `ear-es256-${stamp}-${randomBytes(4).toString('hex')}.pem`
}

/** The key files of `dir`, oldest first. */
async function keyFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => KEY_FILE.test(f)).sort()
}

/** Writes a new P-256 key to `dir` (0600); returns its file name. */
async function createEarKey(dir: string, now: Date): Promise<string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' })
  const name = keyFileName(now)
  await writeFileAtomic(join(dir, name), pem, SECRET_FILE_MODE)
  return name
}

/** Creates `dir` (0700) and a first key when it holds none. Returns whether a key was created. */
export async function ensureEarKey(dir: string, now = new Date()): Promise<boolean> {
  await ensureCaDir(dir)
  if ((await keyFiles(dir)).length > 0) return false
  await createEarKey(dir, now)
  return true
}

/** What {@link rotateEarKey} did. */
export interface RotateResult {
  /** The new active key's `kid`. */
  kid: string
  /** Key files deleted: past the JWKS window. */
  removed: string[]
}

/** Adds a new active key and deletes the keys past the {@link EAR_KEYS_KEPT} window. */
export async function rotateEarKey(dir: string, now = new Date()): Promise<RotateResult> {
  await ensureCaDir(dir)
  const name = await createEarKey(dir, now)
  const files = await keyFiles(dir)
  const removed = files.slice(0, Math.max(0, files.length - EAR_KEYS_KEPT))
  for (const f of removed) await rm(join(dir, f), { force: true })
  const key = createPrivateKey(await readBounded(join(dir, name)))
  return { kid: publicJwkOf(key).kid, removed }
}

/** The loaded keys: the signing key and the JWKS. */
export interface EarKeys {
  key: KeyObject
  kid: string
  jwks: { keys: PublicJwk[] }
  /** Key files of the window that did not load (unreadable, damaged, not P-256). */
  skipped: string[]
}

/**
 * Loads the newest {@link EAR_KEYS_KEPT} keys of `dir`. A file that does not load is skipped.
 *
 * @throws Error when no key loads
 */
export async function loadEarKeys(dir: string): Promise<EarKeys> {
  const files = (await keyFiles(dir)).slice(-EAR_KEYS_KEPT)
  const loaded: { key: KeyObject; jwk: PublicJwk }[] = []
  const skipped: string[] = []
  for (const f of files) {
    try {
      const key = createPrivateKey(await readBounded(join(dir, f)))
      loaded.push({ key, jwk: publicJwkOf(key) })
    } catch {
      // a damaged or foreign file (or one another user wrote): not served, not used
      skipped.push(f)
    }
  }
  const active = loaded.at(-1)
  if (active === undefined) throw new Error(`no usable EAR signing key in ${dir}`)
  // newest first: the active key leads the JWKS
  const keys = loaded.map((l) => l.jwk).reverse()
  return { key: active.key, kid: active.jwk.kid, jwks: { keys }, skipped }
}

/**
 * The keys a running verifier signs with, reloaded when the directory changed (a rotation adds and
 * deletes files, which changes its mtime), checked at most once a second.
 */
export class EarKeyRing {
  readonly dir: string
  readonly #onSkipped: (files: string[]) => void
  #keys: EarKeys | undefined
  #mtimeMs = -1
  #checkedAt = 0
  #loading: Promise<EarKeys> | undefined

  /** @param onSkipped told of key files that did not load, on each (re)load that skips some */
  constructor(dir: string, onSkipped: (files: string[]) => void = () => {}) {
    this.dir = dir
    this.#onSkipped = onSkipped
  }

  /** The current keys. */
  async current(now = Date.now()): Promise<EarKeys> {
    if (this.#keys !== undefined && now - this.#checkedAt < RELOAD_CHECK_MS) return this.#keys
    this.#loading ??= this.#refresh(now).finally(() => {
      this.#loading = undefined
    })
    return this.#loading
  }

  async #refresh(now: number): Promise<EarKeys> {
    let mtimeMs: number
    try {
      mtimeMs = (await stat(this.dir)).mtimeMs
    } catch (err) {
      // the directory went away under a running verifier: keep signing with what it loaded
      if (this.#keys !== undefined) return this.#keys
      throw err
    }
    this.#checkedAt = now
    if (this.#keys !== undefined && mtimeMs === this.#mtimeMs) return this.#keys
    this.#keys = await loadEarKeys(this.dir)
    this.#mtimeMs = mtimeMs
    if (this.#keys.skipped.length > 0) this.#onSkipped(this.#keys.skipped)
    return this.#keys
  }
}
