/**
 * The key of the token hashes (`session-token.ts`): 32 random bytes as hex in one file, mode 0600,
 * by default `<KEYLIME_DIR>/session-token.key` beside `cv_ca` (`[verifier] session_token_key`).
 * The first verifier to start creates it (exclusively: two starting at once end with one key).
 * Verifiers on several hosts sharing one database must share the file, as they share `cv_ca`;
 * one with another key answers 401 to the others' tokens and agents re-authenticate.
 *
 * @module
 */
import { randomBytes } from 'node:crypto'
import { link, mkdir, rm, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join } from 'node:path'
import { KeylimeError } from '../../../errors.ts'
import {
  fileExists,
  readTextBounded,
  SECRET_FILE_MODE,
  writeFileAtomic,
} from '../../../ca/ca-files.ts'

/** The default file name under `KEYLIME_DIR`. */
export const TOKEN_KEY_FILE = 'session-token.key'

/** The key file's path for the option value (`default`, or a path; relative to `keylimeDir`). */
export function tokenKeyPath(option: string, keylimeDir: string): string {
  if (option === '' || option === 'default') return join(keylimeDir, TOKEN_KEY_FILE)
  return isAbsolute(option) ? option : join(keylimeDir, option)
}

/** What {@link loadTokenKey} found. */
export interface TokenKey {
  key: Uint8Array
  /** The file was created now. */
  created: boolean
  /** The file is readable by group or others (the verifier warns). */
  exposed: boolean
}

/** Creates the key file; false when another process created it first. */
async function createKeyFile(path: string): Promise<boolean> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  // written whole to a temporary file, then linked: link() fails if another process won the race
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await writeFileAtomic(tmp, `${randomBytes(32).toString('hex')}\n`, SECRET_FILE_MODE)
    await link(tmp, path)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    return false
  } finally {
    await rm(tmp, { force: true })
  }
}

/** Reads the key at `path`, creating it (0600) when absent. */
export async function loadTokenKey(path: string): Promise<TokenKey> {
  const created = (await fileExists(path)) ? false : await createKeyFile(path)
  const text = (await readTextBounded(path)).trim()
  if (!/^([0-9a-f]{2}){32,}$/i.test(text)) {
    throw new KeylimeError(
      'ERR_SESSION_TOKEN_KEY',
      `${path}: not a session token key (64 or more hex characters)`,
    )
  }
  const exposed = ((await stat(path)).mode & 0o077) !== 0
  return { key: Buffer.from(text, 'hex'), created, exposed }
}
