/**
 * The agent's one door to the TPM. Every TPM operation — start-up, an ActivateCredential, a
 * quote — runs inside {@link TpmAccess.use}, one at a time, over a connection opened for it and
 * closed after. swtpm's socket serves one connection at a time and a raw `/dev/tpm0` one opener,
 * so a connection held for the agent's life would block `tpm2_pcrread` and every other client;
 * between the agent's operations they get their turn. A resource-managed `/dev/tpmrm*`
 * multiplexes its clients itself, so its descriptor stays open.
 *
 * Nothing stays loaded in the TPM between operations: callers keep object contexts
 * (TPM2_ContextSave) and load them per operation.
 *
 * @module
 */

import { AgentError } from '../errors.ts'
import { openTransport, type TctiSpec } from '../transport/open-transport.ts'
import type { TpmTransport } from '../transport/tpm-transport.ts'
import { TpmClient, type TpmClientOptions } from './tpm-client.ts'

/** Options of {@link TpmAccess}. */
export interface TpmAccessOptions {
  /** Opens a connection to the TPM. */
  open: () => Promise<TpmTransport>
  /** What the TPM is, for logs, until the first connection describes itself. */
  description: string
  /** Keep the first connection for the agent's life (resource-managed devices). */
  keepOpen?: boolean
  /** Retry behaviour of the command layer. */
  client?: TpmClientOptions
}

/** True for a TPM device behind the kernel's resource manager (`/dev/tpmrm0`). */
function isResourceManaged(spec: TctiSpec): boolean {
  return spec.kind === 'device' && /\/tpmrm\d+$/.test(spec.path)
}

/**
 * Serialised, per-operation access to one TPM.
 *
 * @example
 * ```ts
 * const access = TpmAccess.forTcti(resolveTcti())
 * const pcrs = await access.use((tpm) => tpm.pcrRead(TPM_ALG_ID.SHA256, [16]))
 * ```
 */
export class TpmAccess {
  readonly #open: () => Promise<TpmTransport>
  readonly #keepOpen: boolean
  readonly #client: TpmClient
  #description: string
  #kept: TpmTransport | undefined
  #current: TpmTransport | undefined
  #tail: Promise<unknown> = Promise.resolve()
  #closed = false

  constructor(opts: TpmAccessOptions) {
    this.#open = opts.open
    this.#keepOpen = opts.keepOpen ?? false
    this.#description = opts.description
    // one command layer for the agent's life (it caches TPM properties); its commands go to the
    // connection of the operation in progress
    const current = (): TpmTransport => {
      if (this.#current === undefined) {
        throw new AgentError('ERR_AGENT_TRANSPORT', 'TPM command outside an operation')
      }
      return this.#current
    }
    this.#client = new TpmClient(
      {
        get description() {
          return current().description
        },
        transmit: async (command) => current().transmit(command),
        close: async () => {},
      },
      opts.client,
    )
  }

  /** Access to the TPM `spec` names: per operation, except for a resource-managed device. */
  static forTcti(spec: TctiSpec): TpmAccess {
    return new TpmAccess({
      open: () => openTransport(spec),
      description:
        spec.kind === 'device'
          ? `device:${spec.path}`
          : `swtpm:host=${spec.host},port=${spec.port}`,
      keepOpen: isResourceManaged(spec),
    })
  }

  /** `kept` for a connection held for the agent's life, else `per operation`. */
  get connection(): 'kept' | 'per operation' {
    return this.#keepOpen ? 'kept' : 'per operation'
  }

  /** The transport description (from the last connection opened). */
  get description(): string {
    return this.#description
  }

  /**
   * Runs `fn` with the TPM: after every operation queued before it, over a connection opened for
   * it (and closed when `fn` settles, unless kept open). `fn` must not call `use` itself.
   *
   * @throws {AgentError} `ERR_AGENT_TRANSPORT` if the TPM cannot be reached; whatever `fn` throws.
   */
  use<T>(fn: (tpm: TpmClient) => Promise<T>): Promise<T> {
    if (this.#closed) {
      return Promise.reject(new AgentError('ERR_AGENT_TRANSPORT', 'TPM access is closed'))
    }
    const run = this.#tail.then(
      () => this.#run(fn),
      () => this.#run(fn),
    )
    this.#tail = run.catch(() => undefined)
    return run
  }

  async #run<T>(fn: (tpm: TpmClient) => Promise<T>): Promise<T> {
    const transport = this.#kept ?? (await this.#open())
    this.#description = transport.description
    this.#current = transport
    try {
      return await fn(this.#client)
    } finally {
      this.#current = undefined
      if (this.#keepOpen) this.#kept = transport
      else await transport.close().catch(() => undefined)
    }
  }

  /** Refuses new operations, waits for those queued, then closes a kept connection. */
  async close(): Promise<void> {
    this.#closed = true
    await this.#tail
    await this.#kept?.close().catch(() => undefined)
    this.#kept = undefined
  }
}
