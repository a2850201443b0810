/**
 * Group commit for compare-and-set writes: the conditional writes that concurrent requests issue
 * within one event-loop turn (or until `maxRows` are pending) go to the database as ONE statement,
 * and each caller learns whether ITS row was written.
 *
 * A {@link BatchKind} supplies two forms of the same conditional write: `one(row)`, the single-row
 * statement, and `many(rows)`, a multi-row statement with identical per-row semantics that answers
 * the keys of the rows it wrote (`RETURNING agent_id`). The batcher
 * - flushes on `setImmediate` (every request that became ready in the same I/O poll joins the
 *   batch; at low load a batch holds one row and costs what the single statement did), or at once
 *   when `maxRows` are pending;
 * - puts at most one row per key in a statement, and holds a row back while a statement with its
 *   key is under way, so `RETURNING` answers every row unambiguously and rows of one key are
 *   written in the order they came;
 * - orders rows by key inside a statement, so two processes batching over one PostgreSQL lock rows
 *   in the same order;
 * - on an error of the multi-row statement (one bad row, a deadlock, a serialization failure)
 *   runs each row's single statement instead, so one bad row cannot fail the others: every caller
 *   gets the outcome or the error of its own row. A failed statement changed nothing, so re-running
 *   its rows one by one is safe. A database outage (`isDatabaseUnavailable`) fails every row at
 *   once instead: the single statements could only time out again.
 *
 * @module
 */
import { isDatabaseUnavailable } from '../db/database-unavailable.ts'

/** One kind of conditional write, in single-row and multi-row form. */
export interface BatchKind<Row> {
  /** For logs and statistics (`insert`, `activate`, …). */
  readonly name: string
  /** The row's key (the primary key it writes): unique within one statement. */
  key(row: Row): string
  /** The single-row statement: resolves `true` when the row was written. */
  one(row: Row): Promise<boolean>
  /** The multi-row statement over rows with distinct keys: resolves the keys it wrote. */
  many(rows: readonly Row[]): Promise<Iterable<string>>
}

/** Options of {@link WriteBatcher}. */
export interface WriteBatcherOptions {
  /** Most rows in one statement; a full batch is sent at once. Default {@link MAX_BATCH_ROWS}. */
  maxRows?: number
  /**
   * Most statements of this kind under way at once (default {@link MAX_IN_FLIGHT}). While that
   * many run, new rows accumulate and go out together when one ends: the batches grow with the
   * database's latency, as in group commit. A full batch is sent regardless.
   */
  maxInFlight?: number
}

/** Counters of a {@link WriteBatcher} (tests, metrics). */
export interface WriteBatcherStats {
  /** Rows written or refused (every settled `write`). */
  rows: number
  /** Statements sent: multi-row, single-row and fallback. */
  statements: number
  /** Multi-row statements among them. */
  batches: number
  /** Multi-row statements that failed and were replaced by single-row statements. */
  fallbacks: number
}

/** Default bound of one statement: 64 rows (a few hundred parameters). */
export const MAX_BATCH_ROWS = 64

/** Default bound of statements of one kind under way at once. */
export const MAX_IN_FLIGHT = 4

interface Pending<Row> {
  row: Row
  key: string
  resolve: (written: boolean) => void
  reject: (error: unknown) => void
}

/**
 * Coalesces the conditional writes of one {@link BatchKind}.
 *
 * @example
 * ```ts
 * const inserts = new WriteBatcher({ name: 'insert', key: (r) => r.agent_id, one, many })
 * if (!(await inserts.write(values))) {
 *   // the row already existed: re-read and retry
 * }
 * ```
 */
export class WriteBatcher<Row> {
  readonly #kind: BatchKind<Row>
  readonly #maxRows: number
  readonly #maxInFlight: number
  /** Statements under way. */
  #running = 0
  #queue: Pending<Row>[] = []
  #scheduled = false
  /** Keys with a statement under way: their next row waits for it (per-key order). */
  readonly #inFlight = new Set<string>()
  readonly #stats: WriteBatcherStats = { rows: 0, statements: 0, batches: 0, fallbacks: 0 }

  constructor(kind: BatchKind<Row>, options: WriteBatcherOptions = {}) {
    const maxRows = options.maxRows ?? MAX_BATCH_ROWS
    if (!Number.isSafeInteger(maxRows) || maxRows < 1) {
      throw new RangeError(`maxRows must be a positive integer (got ${maxRows})`)
    }
    const maxInFlight = options.maxInFlight ?? MAX_IN_FLIGHT
    if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError(`maxInFlight must be a positive integer (got ${maxInFlight})`)
    }
    this.#kind = kind
    this.#maxRows = maxRows
    this.#maxInFlight = maxInFlight
  }

  /** A copy of the counters. */
  get stats(): WriteBatcherStats {
    return { ...this.#stats }
  }

  /** Rows waiting for their statement. */
  get pending(): number {
    return this.#queue.length
  }

  /**
   * Queues `row` for the next statement of this kind.
   *
   * @returns whether the row was written (the compare-and-set succeeded)
   * @throws the error of the row's own single-row statement
   */
  write(row: Row): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#queue.push({ row, key: this.#kind.key(row), resolve, reject })
      if (this.#queue.length >= this.#maxRows) this.#flush()
      else this.#schedule()
    })
  }

  #schedule(): void {
    if (this.#scheduled) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      // At the in-flight bound, the end of a running statement flushes.
      if (this.#running < this.#maxInFlight) this.#flush()
    })
  }

  /** Sends the queued rows, at most `maxRows` distinct keys per statement. */
  #flush(): void {
    for (;;) {
      const batch: Pending<Row>[] = []
      const rest: Pending<Row>[] = []
      for (const p of this.#queue) {
        if (batch.length < this.#maxRows && !this.#inFlight.has(p.key)) {
          this.#inFlight.add(p.key)
          batch.push(p)
        } else {
          rest.push(p)
        }
      }
      this.#queue = rest
      if (batch.length === 0) return
      this.#running++
      void this.#run(batch).finally(() => {
        this.#running--
        for (const p of batch) this.#inFlight.delete(p.key)
        if (this.#queue.length > 0) this.#schedule()
      })
      // Not full: what is left waits for its key's statement, whose end reschedules.
      if (batch.length < this.#maxRows) return
      if (rest.length < this.#maxRows) {
        if (rest.length > 0) this.#schedule()
        return
      }
    }
  }

  async #run(batch: Pending<Row>[]): Promise<void> {
    const only = batch.length === 1 ? batch[0] : undefined
    if (only !== undefined) {
      await this.#single(only)
      return
    }
    batch.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    this.#stats.statements++
    this.#stats.batches++
    let written: Set<string>
    try {
      written = new Set(await this.#kind.many(batch.map((p) => p.row)))
    } catch (e) {
      if (isDatabaseUnavailable(e)) {
        // an outage fails the single statements too: answer now, not after a second timeout
        for (const p of batch) p.reject(e)
        return
      }
      this.#stats.fallbacks++
      await Promise.all(batch.map((p) => this.#single(p)))
      return
    }
    this.#stats.rows += batch.length
    for (const p of batch) p.resolve(written.has(p.key))
  }

  async #single(p: Pending<Row>): Promise<void> {
    this.#stats.statements++
    try {
      const written = await this.#kind.one(p.row)
      this.#stats.rows++
      p.resolve(written)
    } catch (e) {
      this.#stats.rows++
      p.reject(e)
    }
  }
}
