/**
 * File handling for CA directories: upstream's file names, atomic writes with the right modes,
 * and bounded reads that fail with a typed error naming the file.
 *
 * Writes go to a temporary file in the same directory which is then renamed over the target, so a
 * concurrent reader sees either the old or the new file, never half of one.
 *
 * @module
 */
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { CaError } from './errors.ts'

/** Upstream's file names inside a CA directory (`keylime/ca_util.py`). */
export const CA_FILES = {
  caCert: 'cacert.crt',
  caPublic: 'ca-public.pem',
  crlDer: 'cacrl.der',
  crlPem: 'cacrl.pem',
  privateYml: 'private.yml',
  lock: '.keylime-ca.lock',
} as const

/** File names of an issued certificate `<name>-cert.crt`, `<name>-private.pem`, `<name>-public.pem`. */
export function certFileNames(name: string): {
  cert: string
  privateKey: string
  publicKey: string
  pkg: string
} {
  return {
    cert: `${name}-cert.crt`,
    privateKey: `${name}-private.pem`,
    publicKey: `${name}-public.pem`,
    pkg: `${name}-pkg.zip`,
  }
}

/** Mode of private keys, `private.yml` and packages. */
export const SECRET_FILE_MODE = 0o600
/** Mode of certificates, public keys and CRLs (upstream: 0640). */
export const PUBLIC_FILE_MODE = 0o640
/** Mode of CA directories. */
export const CA_DIR_MODE = 0o700

/** Largest file the CA reads (4 MiB): certificates, keys, CRLs and private.yml are far smaller. */
const MAX_READ_BYTES = 4 * 1024 * 1024

/** Creates `dir` (and parents) if needed and forces mode 0700 on it. */
export async function ensureCaDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: CA_DIR_MODE })
  await chmod(dir, CA_DIR_MODE)
}

/** Writes `data` to `path` atomically with `mode` (temporary file + fsync + rename). */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode: number,
): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`
  const fh = await open(tmp, 'wx', mode)
  try {
    await fh.writeFile(data)
    await fh.chmod(mode)
    await fh.sync()
  } finally {
    await fh.close()
  }
  try {
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}

/** True when `path` exists (any type). */
export async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path)
    return true
  } catch {
    return false
  }
}

/**
 * Reads a file of at most 4 MiB.
 *
 * @param hint added to the "missing" message, e.g. "check [verifier] server_cert".
 * @throws {CaError} `ERR_CA_FILE_MISSING` (naming the file) or `ERR_CA_MALFORMED` when too large.
 */
export async function readBounded(path: string, hint?: string): Promise<Buffer> {
  let size: number
  try {
    size = (await stat(path)).size
  } catch (cause) {
    throw new CaError('ERR_CA_FILE_MISSING', `file not found: ${path}${hint ? ` (${hint})` : ''}`, {
      cause,
    })
  }
  if (size > MAX_READ_BYTES) throw new CaError('ERR_CA_MALFORMED', `file too large: ${path}`)
  return readFile(path)
}

/** {@link readBounded} as UTF-8 text. */
export async function readTextBounded(path: string, hint?: string): Promise<string> {
  return (await readBounded(path, hint)).toString('utf8')
}

/** Joins a CA directory and a file name. */
export function caPath(dir: string, file: string): string {
  return join(dir, file)
}
