/**
 * `keylime_userdata_encrypt <file>` (upstream `keylime/cmd/user_data_encrypt.py`): encrypts a file
 * for later delivery with `keylime_tenant -k content_keys.txt -p content_payload.txt`.
 *
 * Writes, in the current directory, `content_keys.txt` (base64 lines k, v, u — upstream's order;
 * the tenant reads them as K, U, V, which combine to the same K since U ⊕ V = V ⊕ U) and
 * `content_payload.txt` (the base64 payload). Both files are created mode 0600. The keys are never
 * printed.
 *
 * @module
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { decryptPayload, encryptPayload, generatePayloadKeys } from './payload-keys.ts'

/** Where the tool writes. */
export interface UserdataEncryptIo {
  stdout: (s: string) => void
  stderr: (s: string) => void
  /** Output directory (default `process.cwd()`). */
  cwd?: string
}

/**
 * Runs the tool.
 *
 * @returns 0 on success, 2 for a usage error, 6 when the input cannot be read (the tenant's codes).
 */
export function runUserdataEncrypt(args: readonly string[], io: UserdataEncryptIo): number {
  const infile = args[0]
  if (infile === undefined || infile === '-h' || infile === '--help' || args.length > 1) {
    io.stderr(
      'usage: keylime_userdata_encrypt <file>\nPlease pass in a file input file to encrypt\n',
    )
    return infile === '-h' || infile === '--help' ? 0 : 2
  }
  if (!existsSync(infile) || !statSync(infile).isFile()) {
    io.stderr(`ERROR: File ${infile} not found.\n`)
    return 6
  }
  let contents: Buffer
  try {
    contents = readFileSync(infile)
  } catch (e) {
    io.stderr(`ERROR: cannot read ${infile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}\n`)
    return 6
  }
  const keys = generatePayloadKeys()
  const ciphertext = encryptPayload(keys.k, contents)
  if (!decryptPayload(keys.k, ciphertext).equals(contents)) {
    io.stderr('ERROR: Test decryption failed\n')
    return 1
  }
  const dir = io.cwd ?? process.cwd()
  io.stdout('Writing keys to content_keys.txt\n')
  const b64 = (b: Buffer) => b.toString('base64')
  writeFileSync(join(dir, 'content_keys.txt'), `${b64(keys.k)}\n${b64(keys.v)}\n${b64(keys.u)}\n`, {
    mode: 0o600,
  })
  io.stdout('Writing encrypted data to content_payload.txt\n')
  writeFileSync(join(dir, 'content_payload.txt'), ciphertext, { mode: 0o600 })
  return 0
}
