/**
 * What the agent does with a payload once K is derived (wire-formats §4, rust-keylime
 * `payloads.rs`): K goes to `secure/<enc_keyname>` and the decrypted payload to
 * `secure/unzipped/<dec_payload_file>` (0600); a zip is extracted into `secure/unzipped/`
 * (`extract_payload_zip`; unsafe, colliding or oversized archives are refused whole, before
 * anything is written: `src/protocol/read-zip.ts`); `payload_script`
 * (`autorun.sh`) runs with `sh -c` in that directory, its exit status logged and otherwise
 * ignored; scripts named in `action_list` become 0700; `RevocationNotifier-cert.crt` is returned
 * so the API can verify revocation notices. Only ever called after the auth_tag matched and
 * AES-GCM authenticated the payload. Payload bytes and K are never logged.
 *
 * @module
 */

import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join, normalize, sep } from 'node:path'
import { readZip, type ZipEntry, ZipError, type ZipLimits } from '../../protocol/read-zip.ts'
import { decryptPayload } from '../api/decrypt-payload.ts'
import { AgentError } from '../errors.ts'

/** Options of {@link installPayload}. */
export interface InstallPayloadOptions {
  /** The secure directory. */
  secureDir: string
  /** `enc_keyname`. */
  encKeyname: string
  /** `dec_payload_file`. */
  decPayloadFile: string
  /** `extract_payload_zip`. */
  extractZip: boolean
  /** `payload_script` ("" disables). */
  payloadScript: string
  /** Log sink (no secrets). */
  log?: (msg: string, fields?: Record<string, unknown>) => void
  /** Bounds on the payload zip (default `DEFAULT_ZIP_LIMITS`). */
  zipLimits?: Partial<ZipLimits>
}

/** The outcome. */
export interface InstalledPayload {
  /** Directory the zip was extracted to. */
  unzippedDir: string
  /** Files extracted. */
  files: string[]
  /** Exit status of the payload script, or undefined if none ran. */
  scriptExit: number | undefined
  /** The revocation certificate PEM from the payload, if present. */
  revocationCertPem: string | undefined
}

/** The name the zip entry would have inside `dir`, or undefined if it escapes it. */
function safeJoin(dir: string, name: string): string | undefined {
  if (name.startsWith('/') || name.includes('\0')) return undefined
  const full = normalize(join(dir, name))
  return full.startsWith(dir + sep) ? full : undefined
}

/**
 * Extracts a payload zip into `dir`, which holds only `dec_payload_file` so far. The archive is
 * validated whole first (`readZip`: names, collisions, types, sizes), so every failure is typed.
 */
function extractZip(zip: Uint8Array, dir: string, opts: InstallPayloadOptions): string[] {
  let entries: ZipEntry[]
  try {
    entries = readZip(zip, { limits: opts.zipLimits, reserved: [opts.decPayloadFile] })
  } catch (cause) {
    const reason = cause instanceof ZipError ? cause.message : 'unreadable'
    throw new AgentError('ERR_AGENT_PAYLOAD', `payload zip rejected: ${reason}`, { cause })
  }
  const files: string[] = []
  try {
    for (const e of entries) {
      const path = join(dir, e.name)
      if (e.isDirectory) mkdirSync(path, { recursive: true, mode: 0o700 })
      else {
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
        writeFileSync(path, e.data, { mode: 0o600, flag: 'wx' })
        files.push(e.name)
      }
    }
  } catch (cause) {
    throw new AgentError('ERR_AGENT_PAYLOAD', 'payload zip does not extract', { cause })
  }
  return files
}

/**
 * Stores K, decrypts and installs the payload (if one came with U), runs the payload script.
 *
 * @throws {AgentError} `ERR_AGENT_PAYLOAD` if the payload does not decrypt or the zip is bad
 *   (the cause is then a `ZipError` with its own code).
 */
export async function installPayload(
  k: Uint8Array,
  payloadB64: string | undefined,
  opts: InstallPayloadOptions,
): Promise<InstalledPayload> {
  const log = opts.log ?? (() => {})
  const unzipped = join(opts.secureDir, 'unzipped')
  rmSync(unzipped, { recursive: true, force: true })
  mkdirSync(unzipped, { recursive: true, mode: 0o700 })
  writeFileSync(join(opts.secureDir, opts.encKeyname), k, { mode: 0o600 })
  const out: InstalledPayload = {
    unzippedDir: unzipped,
    files: [],
    scriptExit: undefined,
    revocationCertPem: undefined,
  }
  if (payloadB64 === undefined || payloadB64 === '') return out
  const plain = decryptPayload(k, payloadB64)
  writeFileSync(join(unzipped, opts.decPayloadFile), plain, { mode: 0o600 })
  const isZip = plain[0] === 0x50 && plain[1] === 0x4b
  if (opts.extractZip && isZip) out.files = extractZip(plain, unzipped, opts)
  const certPath = join(unzipped, 'RevocationNotifier-cert.crt')
  if (existsSync(certPath)) out.revocationCertPem = readFileSync(certPath, 'utf8')
  const actionList = join(unzipped, 'action_list')
  if (existsSync(actionList)) {
    for (const line of readFileSync(actionList, 'utf8').split(/[\n,]/)) {
      const p = line.trim() === '' ? undefined : safeJoin(unzipped, line.trim())
      if (p !== undefined && existsSync(p)) chmodSync(p, 0o700)
    }
  }
  const script = opts.payloadScript === '' ? undefined : safeJoin(unzipped, opts.payloadScript)
  if (script !== undefined && existsSync(script)) {
    chmodSync(script, 0o700)
    const proc = Bun.spawn(['sh', '-c', script], {
      cwd: unzipped,
      stdout: 'inherit',
      stderr: 'inherit',
    })
    out.scriptExit = await proc.exited
    log('payload script finished', { script: opts.payloadScript, exit: out.scriptExit })
  }
  return out
}
