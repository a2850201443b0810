/**
 * swtpm's TCP data port (wire-formats §6.6): each command is framed as the TCG simulator's
 * `TPM_SEND_COMMAND` — `u32be 8 | u8 locality | u32be length | command` — and answered with
 * `u32be length | response | u32be 0`. The connection stays open for the agent's life. The ctrl
 * port is never touched (start swtpm with `--flags not-need-init,startup-clear`).
 *
 * @module
 */

import { Socket } from 'node:net'
import { AgentError } from '../errors.ts'
import type { TpmTransport } from './tpm-transport.ts'

/** `TPM_SEND_COMMAND` of the TCG simulator protocol. */
const TPM_SEND_COMMAND = 8
/** Largest response we accept (the TPM's own maximum is 4096). */
const MAX_RESPONSE = 64 * 1024

/** Options of {@link openSwtpmSocket}. */
export interface SwtpmSocketOptions {
  /** Host of the data port (loopback in tests). */
  host: string
  /** The data port. */
  port: number
  /** Per-command timeout (default 60 s: RSA key generation on a loaded machine). */
  timeoutMs?: number
  /** Locality byte of the framing (default 0). */
  locality?: number
}

/**
 * Connects to swtpm's data port.
 *
 * @throws {AgentError} `ERR_AGENT_TRANSPORT` if the connection fails.
 */
export async function openSwtpmSocket(opts: SwtpmSocketOptions): Promise<TpmTransport> {
  const socket = new Socket()
  const timeoutMs = opts.timeoutMs ?? 60_000
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        new AgentError('ERR_AGENT_TRANSPORT', `swtpm ${opts.host}:${opts.port}: ${err.message}`, {
          cause: err,
        }),
      )
    socket.once('error', onError)
    socket.connect(opts.port, opts.host, () => {
      socket.off('error', onError)
      resolve()
    })
  })
  socket.setNoDelay(true)

  let buffered: Buffer = Buffer.alloc(0)
  let pending:
    { resolve: (b: Uint8Array) => void; reject: (e: Error) => void; timer: Timer } | undefined
  let closedError: Error | undefined

  const fail = (err: Error) => {
    const p = pending
    pending = undefined
    if (p !== undefined) {
      clearTimeout(p.timer)
      p.reject(err)
    }
  }
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.byteLength === 0 ? chunk : Buffer.concat([buffered, chunk])
    if (pending === undefined || buffered.byteLength < 4) return
    const len = buffered.readUInt32BE(0)
    if (len > MAX_RESPONSE) {
      fail(new AgentError('ERR_AGENT_TRANSPORT', `swtpm response length ${len} too large`))
      socket.destroy()
      return
    }
    if (buffered.byteLength < 4 + len + 4) return
    const response = new Uint8Array(buffered.subarray(4, 4 + len))
    buffered = buffered.subarray(4 + len + 4)
    const p = pending
    pending = undefined
    clearTimeout(p.timer)
    p.resolve(response)
  })
  socket.on('error', (err) => {
    closedError = new AgentError('ERR_AGENT_TRANSPORT', `swtpm connection: ${err.message}`)
    fail(closedError)
  })
  socket.on('close', () => {
    closedError ??= new AgentError('ERR_AGENT_TRANSPORT', 'swtpm closed the connection')
    fail(closedError)
  })

  return {
    description: `swtpm:host=${opts.host},port=${opts.port}`,
    transmit(command: Uint8Array): Promise<Uint8Array> {
      if (closedError !== undefined) return Promise.reject(closedError)
      if (pending !== undefined) {
        return Promise.reject(new AgentError('ERR_AGENT_TRANSPORT', 'swtpm: command in flight'))
      }
      return new Promise<Uint8Array>((resolve, reject) => {
        const timer = setTimeout(() => {
          fail(new AgentError('ERR_AGENT_TRANSPORT', `swtpm: no response in ${timeoutMs} ms`))
          socket.destroy()
        }, timeoutMs)
        pending = { resolve, reject, timer }
        const header = Buffer.alloc(9)
        header.writeUInt32BE(TPM_SEND_COMMAND, 0)
        header.writeUInt8(opts.locality ?? 0, 4)
        header.writeUInt32BE(command.byteLength, 5)
        socket.write(Buffer.concat([header, command]))
      })
    },
    async close(): Promise<void> {
      closedError ??= new AgentError('ERR_AGENT_TRANSPORT', 'transport closed')
      await new Promise<void>((resolve) => socket.end(resolve))
      socket.destroy()
    },
  }
}
