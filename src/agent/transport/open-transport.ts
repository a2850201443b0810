/**
 * Selects and opens the TPM transport the way rust-keylime does: the `TCTI` environment
 * variable (`device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`), also tpm2-tools'
 * `TPM2TOOLS_TCTI`, else `/dev/tpmrm0` when it exists, else `/dev/tpm0`. The result is
 * serialized: one command in flight.
 *
 * @module
 */

import { existsSync } from 'node:fs'
import { AgentError } from '../errors.ts'
import { openDeviceTransport } from './open-device-transport.ts'
import { openSwtpmSocket } from './swtpm-socket-transport.ts'
import { serializeTransport, type TpmTransport } from './tpm-transport.ts'

/** A parsed TCTI string. */
export type TctiSpec =
  { kind: 'device'; path: string } | { kind: 'swtpm'; host: string; port: number }

/**
 * Parses a TCTI string: `device[:PATH]`, `swtpm[:host=H,port=P]` (also `mssim` with the same
 * options, the framing is the same) or the bare tpm2-tss forms `device:/dev/tpm0`,
 * `swtpm:port=2321`. tpm2-tss defaults: device `/dev/tpm0`, host `localhost`, port 2321.
 *
 * @throws {AgentError} `ERR_AGENT_CONFIG` naming the variable for anything else.
 */
export function parseTcti(text: string, source = 'TCTI'): TctiSpec {
  const t = text.trim()
  const colon = t.indexOf(':')
  const name = (colon < 0 ? t : t.slice(0, colon)).toLowerCase()
  const conf = colon < 0 ? '' : t.slice(colon + 1)
  if (name === 'device') return { kind: 'device', path: conf === '' ? '/dev/tpm0' : conf }
  if (name === 'swtpm' || name === 'mssim') {
    let host = 'localhost'
    let port = 2321
    for (const part of conf.split(',').filter((p) => p !== '')) {
      const [k, v] = part.split('=', 2) as [string, string | undefined]
      if (k === 'host' && v) host = v
      else if (k === 'port' && v && /^\d{1,5}$/.test(v) && Number(v) < 65536) port = Number(v)
      else throw new AgentError('ERR_AGENT_CONFIG', `${source}: bad option "${part}"`)
    }
    return { kind: 'swtpm', host, port }
  }
  throw new AgentError(
    'ERR_AGENT_CONFIG',
    `${source}: unsupported TCTI "${name}" (use device:PATH or swtpm:host=H,port=P)`,
  )
}

/** The TCTI in effect for `env`: `TCTI`, `TPM2TOOLS_TCTI`, or the default device. */
export function resolveTcti(env: Record<string, string | undefined> = process.env): TctiSpec {
  if (env.TCTI) return parseTcti(env.TCTI, 'TCTI')
  if (env.TPM2TOOLS_TCTI) return parseTcti(env.TPM2TOOLS_TCTI, 'TPM2TOOLS_TCTI')
  return { kind: 'device', path: existsSync('/dev/tpmrm0') ? '/dev/tpmrm0' : '/dev/tpm0' }
}

/**
 * Opens the transport of `spec` (default: {@link resolveTcti}), serialized.
 *
 * @throws {AgentError} `ERR_AGENT_TRANSPORT` / `ERR_AGENT_CONFIG`.
 */
export async function openTransport(spec: TctiSpec = resolveTcti()): Promise<TpmTransport> {
  const inner =
    spec.kind === 'device'
      ? await openDeviceTransport({ path: spec.path })
      : await openSwtpmSocket({ host: spec.host, port: spec.port })
  return serializeTransport(inner)
}
