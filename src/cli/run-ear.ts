/**
 * `keylime ear rotate | jwks` (docs/ear.md): the verifier's EAR signing keys in
 * `<KEYLIME_DIR>/ear_keys`.
 *
 * - `rotate` adds a new active key and deletes those past the JWKS window (the active key and the
 *   two before it); a running verifier signs with the new key within a second.
 * - `jwks` prints the JWKS the verifier serves at `GET /.well-known/jwks.json`.
 *
 * @module
 */
import { getKeylimeDir } from '../config/get-keylime-dir.ts'
import { earKeyDir, ensureEarKey, loadEarKeys, rotateEarKey } from '../verifier/results/ear-keys.ts'
import type { CliIo } from './main.ts'

const USAGE = `usage: keylime ear rotate | jwks

  rotate   create a new EAR signing key; the previous two stay in the JWKS
  jwks     print the JWKS of the EAR signing keys
`

/** Runs `keylime ear …`; resolves with the exit code. */
export async function runEarCli(args: string[], io: CliIo): Promise<number> {
  const dir = earKeyDir(getKeylimeDir(io.env))
  const [sub, ...rest] = args
  if (sub === '-h' || sub === '--help') {
    io.stdout(USAGE)
    return 0
  }
  if (rest.length > 0 || (sub !== 'rotate' && sub !== 'jwks')) {
    io.stderr(`keylime ear: expected "rotate" or "jwks"\n\n${USAGE}`)
    return 2
  }
  if (sub === 'rotate') {
    const r = await rotateEarKey(dir)
    io.stdout(`new EAR signing key ${r.kid} in ${dir}\n`)
    if (r.removed.length > 0) io.stdout(`removed ${r.removed.length} key(s) past the JWKS window\n`)
    return 0
  }
  await ensureEarKey(dir)
  io.stdout(`${JSON.stringify((await loadEarKeys(dir)).jwks, null, 2)}\n`)
  return 0
}
