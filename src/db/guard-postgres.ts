/**
 * Bounds every statement on PostgreSQL in time, so an unreachable or stalled server costs a
 * request `timeoutMs` at most (then `ERR_DB_UNAVAILABLE`, HTTP 503) instead of a hang.
 *
 * postgres.js has no statement timeout of its own, and a query sent on a connection whose peer
 * vanished without a reset (a partition, a host that died, a failover) waits for TCP to give up,
 * which takes minutes, while later queries pipeline behind it. So:
 *
 * - every statement and transaction the drizzle client runs races a timer of `timeoutMs`;
 * - a statement that misses it resets the pool: every socket is destroyed with an error, which
 *   makes postgres.js reject what was sent or waiting on them instead of resending it later (a
 *   write answered 503 must not land after a newer one), and the statement is cancelled if it
 *   was still queued; the next statements open fresh connections;
 * - a transaction whose time ran out never runs its body (its BEGIN may have been queued);
 * - sockets are ours (postgres.js's `socket` option), so the reset can reach them; one the server
 *   closes before answering fails with an error, which postgres.js does not retry behind our back;
 * - `connect_timeout` is the same bound, and reconnection backoff is capped at 2 s so a recovered
 *   server is used within seconds.
 *
 * Migrations do not go through the guard: a schema change may take longer than any request.
 *
 * @module
 */
import { connect, type Socket } from 'node:net'
import type postgres from 'postgres'
import { DatabaseError } from './errors.ts'

/** Longest wait between reconnection attempts (s); postgres.js's own cap is 20 s. */
const MAX_BACKOFF_S = 2

/** The parts of postgres.js's parsed options the socket factory reads. */
interface ParsedOptions {
  host: string[]
  port: number[]
  path?: string | false
}

/** The postgres.js options a guard sets (`socket` is documented, not typed, by postgres.js). */
export interface GuardedClientOptions {
  socket: (options: ParsedOptions) => Socket
  connect_timeout: number
  backoff: (attempt: number) => number
}

/** Options of {@link PostgresGuard}. */
export interface PostgresGuardOptions {
  /** Most time a statement or transaction may take (ms); 0 for no bound. */
  timeoutMs: number
  /** Told every statement's outcome: nothing on success, else its error. */
  report?: (error?: unknown) => void
}

/** A pending postgres.js query as drizzle uses it. */
interface PendingQuery extends PromiseLike<unknown> {
  values(): PendingQuery
  raw(): PendingQuery
  execute(): PendingQuery
  cancel(): unknown
  catch(onRejected?: (reason: unknown) => unknown): Promise<unknown>
  finally(onFinally?: () => void): Promise<unknown>
}

/** Drops a statement still queued in postgres.js; one already sent is cancelled server-side. */
function cancelQuietly(q: PendingQuery): void {
  try {
    void Promise.resolve(q.cancel()).catch(() => {})
  } catch {
    // nothing to cancel
  }
}

/**
 * The guard of one postgres.js client: its socket factory and the wrapper drizzle is given.
 *
 * @example
 * ```ts
 * const guard = new PostgresGuard({ timeoutMs: 5000, report: (e) => health.report(e) })
 * const client = postgres(url, { max: 15, ...guard.clientOptions })
 * const db = drizzle({ client: guard.wrap(client), schema })
 * ```
 */
export class PostgresGuard {
  readonly #timeoutMs: number
  readonly #report: (error?: unknown) => void
  readonly #sockets = new Set<Socket>()
  #next = 0
  /** Pool resets so far (tests, logs). */
  resets = 0

  constructor(options: PostgresGuardOptions) {
    this.#timeoutMs = options.timeoutMs
    this.#report = options.report ?? (() => {})
  }

  /** Options to pass to `postgres()`. */
  get clientOptions(): GuardedClientOptions {
    return {
      socket: (o) => this.#open(o),
      // no bound: postgres.js's default connect timeout
      connect_timeout: this.#timeoutMs > 0 ? this.#timeoutMs / 1000 : 30,
      backoff: (attempt) => (0.5 + Math.random() / 2) * Math.min(3 ** attempt / 100, MAX_BACKOFF_S),
    }
  }

  /** `client` with `unsafe` (every drizzle statement) and `begin` bounded in time. */
  wrap<T extends postgres.Sql>(client: T): T {
    const unsafe = (...args: unknown[]) =>
      this.#guardQuery((client.unsafe as unknown as (...a: unknown[]) => PendingQuery)(...args))
    const begin = (...args: unknown[]) => this.#guardBegin(client, args)
    return new Proxy(client, {
      get(target, prop, receiver) {
        if (prop === 'unsafe') return unsafe
        if (prop === 'begin') return begin
        return Reflect.get(target, prop, receiver)
      },
    })
  }

  /** A connection to the next host (postgres.js runs the protocol and TLS over it). */
  #open(o: ParsedOptions): Socket {
    const i = this.#next++ % Math.max(1, o.host.length)
    const socket = o.path
      ? connect(o.path)
      : connect({ host: o.host[i] ?? 'localhost', port: o.port[i] ?? o.port[0] ?? 5432 })
    // postgres.js drops our listeners from a socket it wraps in TLS: prune by state as well
    for (const s of this.#sockets) if (s.destroyed) this.#sockets.delete(s)
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    // A close before any answer is an error: postgres.js would otherwise re-run the queued
    // statement on a later connection, after its caller was told it failed.
    socket.once('end', () => {
      if (socket.bytesRead === 0 && socket.listenerCount('error') > 0) {
        socket.destroy(connectionError('CONNECTION_CLOSED', 'closed before the server answered'))
      }
    })
    return socket
  }

  /** Destroys every connection: what was sent or waits on them fails at once. */
  #reset(): void {
    this.resets++
    const err = connectionError('CONNECTION_DESTROYED', 'no answer in time; connections reset')
    for (const s of this.#sockets) {
      // postgres.js removes its listeners from a socket it is done with: an error with no
      // listener would be thrown
      if (s.listenerCount('error') === 0) s.on('error', () => {})
      s.destroy(err)
    }
    this.#sockets.clear()
  }

  #guardQuery(q: PendingQuery): PendingQuery {
    const guard = this
    const wrapped: PendingQuery = {
      values() {
        q.values()
        return wrapped
      },
      raw() {
        q.raw()
        return wrapped
      },
      execute() {
        return wrapped
      },
      cancel: () => q.cancel(),
      // biome-ignore lint/suspicious/noThenProperty: postgres.js queries are thenables; drizzle awaits them
      then(onFulfilled, onRejected) {
        return guard.#bounded(q, () => cancelQuietly(q)).then(onFulfilled, onRejected)
      },
      catch(onRejected) {
        return Promise.resolve(wrapped).catch(onRejected)
      },
      finally(onFinally) {
        return Promise.resolve(wrapped).finally(onFinally)
      },
    }
    return wrapped
  }

  #guardBegin(client: postgres.Sql, args: unknown[]): Promise<unknown> {
    let expired = false
    const fn = args[args.length - 1] as (sql: postgres.TransactionSql) => unknown
    const guarded = async (sql: postgres.TransactionSql) => {
      if (expired) throw unavailable(this.#timeoutMs) // rolled back, never run
      let result: unknown
      try {
        result = await fn(sql)
      } catch (error) {
        // The connection is gone: begin() rejects through its close. A ROLLBACK sent now would
        // be written to postgres.js's nulled socket from a timer, an uncatchable TypeError that
        // ends the process (porsager/postgres#1066, #1208), so this body never settles instead.
        if (connectionLost(error)) return new Promise<never>(() => {})
        throw error
      }
      if (expired) throw unavailable(this.#timeoutMs) // rolled back instead of committed
      return result
    }
    const call = client.begin as (...a: unknown[]) => Promise<unknown>
    const work = call(...args.slice(0, -1), guarded)
    return this.#bounded(work, () => {
      expired = true
    })
  }

  /** `work`, or `ERR_DB_UNAVAILABLE` after the timeout (then `onTimeout` and a pool reset). */
  #bounded<T>(work: PromiseLike<T>, onTimeout: () => void): Promise<T> {
    if (!(this.#timeoutMs > 0)) {
      // database_timeout = 0: no bound, outcomes still reported
      return Promise.resolve(work).then(
        (value) => {
          this.#report()
          return value
        },
        (error: unknown) => {
          this.#report(error)
          throw error
        },
      )
    }
    return new Promise<T>((resolve, reject) => {
      let settled = false
      const timer = setTimeout(() => {
        settled = true
        const err = unavailable(this.#timeoutMs)
        onTimeout()
        this.#reset()
        this.#report(err)
        reject(err)
      }, this.#timeoutMs)
      work.then(
        (value) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          this.#report()
          resolve(value)
        },
        (error: unknown) => {
          if (settled) return
          settled = true
          clearTimeout(timer)
          this.#report(error)
          reject(error)
        },
      )
    })
  }
}

function unavailable(timeoutMs: number): DatabaseError {
  return new DatabaseError(
    'ERR_DB_UNAVAILABLE',
    `the database did not answer within ${timeoutMs} ms (database_timeout)`,
    { status: 503 },
  )
}

/** Codes of an error that ends the connection it happened on (socket, postgres.js, SQLSTATE). */
const LOST = new Set([
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  'ECONNRESET',
  'EPIPE',
  '57P01',
  '57P02',
])

/** Whether `error` means the transaction's connection is closed (not merely a failed statement). */
function connectionLost(error: unknown): boolean {
  // drizzle wraps the driver's error as the cause of its own
  for (let e = error, i = 0; e instanceof Error && i < 3; e = e.cause, i++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && (LOST.has(code) || code.startsWith('08'))) return true
  }
  return false
}

/** An error shaped like postgres.js's own connection errors (`code` is what callers test). */
function connectionError(code: string, message: string): Error {
  return Object.assign(new Error(`${code}: ${message}`), { code })
}
