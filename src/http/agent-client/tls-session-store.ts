/**
 * TLS sessions of the agent connections, kept in memory and in a file across restarts, so a
 * restarted verifier (or one taking over a dead sibling's agents) resumes its agents' sessions
 * instead of paying full handshakes (docs/benchmarks.md, Verifier, sessions 2 and 4).
 *
 * The file is JSON, written by atomic replace with mode 0600: it holds session secrets. It lives
 * beside `cv_ca`, whose client key already lets its reader act as the verifier.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { chmodSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

/** Sessions older than this are not offered (servers keep tickets 2 h by default). */
const SESSION_MAX_AGE_MS = 24 * 3_600_000
const SESSIONS_MAX = 100_000
/**
 * Larger sessions are not kept: one holds the agent's certificate (1–2 KB in all), so an agent
 * with a huge certificate pays full handshakes rather than holding memory for good.
 */
const SESSION_MAX_BYTES = 8 * 1024
const SESSIONS_MAX_TOTAL_BYTES = 256 * 1024 * 1024
/**
 * A newer session replaces a kept one only when that is older than this: agents that close idle
 * connections would otherwise replace every session every round.
 */
const SESSION_REFRESH_MS = 30 * 60_000
/** Saves for refreshed sessions only (no new agent) at most this often. */
const REFRESH_SAVE_MS = 5 * 60_000
/** How often new sessions are written out. */
const SAVE_TICK_MS = 5_000

/** Name prefix of the verifiers' TLS session files (see {@link sessionFileFor}). */
const SESSION_FILE_PREFIX = 'verifier-tls-sessions-'

/**
 * The TLS session file of verifier instance `instanceId` in `dir` (`KEYLIME_DIR`): one per
 * instance, named by a digest of its id, so processes sharing the directory find each other's.
 */
export function sessionFileFor(dir: string, instanceId: string): string {
  const id = createHash('sha256').update(instanceId).digest('hex').slice(0, 12)
  return join(dir, `${SESSION_FILE_PREFIX}${id}.json`)
}

/** TLS sessions by pool key, bounded in count and bytes, optionally persisted to a file. */
export class TlsSessionStore {
  readonly #file: string | undefined
  /** Sessions by pool key, with when they were kept (ms since epoch). */
  readonly #sessions = new Map<string, { s: Buffer; at: number }>()
  #bytes = 0
  /** Sessions for agents that had none, and refreshed ones, since the last save. */
  #new = 0
  #refreshed = 0
  /** Sibling session files already read, with their modification time then. */
  readonly #siblingMtimes = new Map<string, number>()
  #lastSave = 0
  #saveTimer: ReturnType<typeof setInterval> | undefined

  /** Loads `file` (if given) and saves to it every few seconds while there is news. */
  constructor(file?: string) {
    this.#file = file
    if (file !== undefined) {
      this.#load(file)
      this.#saveTimer = setInterval(() => this.save(), SAVE_TICK_MS)
      this.#saveTimer.unref()
    }
  }

  /** The session kept for `key`, if any. */
  get(key: string): Buffer | undefined {
    return this.#sessions.get(key)?.s
  }

  /** Whether a session is kept for `key`. */
  has(key: string): boolean {
    return this.#sessions.has(key)
  }

  /**
   * Offers the session of a connection's first answer (TLS 1.3 tickets follow the handshake).
   * `resumed`: that connection resumed the kept one, which then stays unless it is old.
   */
  keep(key: string, session: Buffer | undefined, resumed: boolean): void {
    if (session === undefined || session.length === 0 || session.length > SESSION_MAX_BYTES) return
    const kept = this.#sessions.get(key)
    const now = Date.now()
    if (kept === undefined) {
      if (this.#sessions.size >= SESSIONS_MAX) return
      if (this.#bytes + session.length > SESSIONS_MAX_TOTAL_BYTES) return
      this.#new++
    } else if (resumed && now - kept.at < SESSION_REFRESH_MS) return
    else this.#refreshed++ // refreshed, or the kept one no longer resumes
    this.#set(key, session, now)
  }

  #set(key: string, s: Buffer, at: number): void {
    this.#bytes += s.length - (this.#sessions.get(key)?.s.length ?? 0)
    this.#sessions.set(key, { s, at })
  }

  /**
   * Adds a session file's sessions for agents that have none here; returns how many were added.
   * An unreadable or garbled file adds none.
   */
  #load(file: string): number {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'))
    } catch {
      return 0 // none yet, or unreadable: full handshakes
    }
    const list = (parsed as { sessions?: unknown } | null)?.sessions
    if (!Array.isArray(list)) return 0
    const oldest = Date.now() - SESSION_MAX_AGE_MS
    let added = 0
    for (const e of list.slice(0, SESSIONS_MAX)) {
      if (this.#sessions.size >= SESSIONS_MAX || this.#bytes >= SESSIONS_MAX_TOTAL_BYTES) break
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string') continue
      const at = Number(e[2])
      if (!(at > oldest) || this.#sessions.has(e[0]) || e[1].length > SESSION_MAX_BYTES * 2)
        continue
      this.#set(e[0], Buffer.from(e[1], 'base64'), at)
      added++
    }
    return added
  }

  /**
   * Adds the sessions other verifier processes sharing the directory saved beside ours (their
   * {@link sessionFileFor} files), for agents that have none here. A file is read again only
   * when it changed. Returns how many sessions were added.
   */
  importSiblings(): number {
    const own = this.#file
    if (own === undefined) return 0
    const dir = dirname(own)
    const name = basename(own)
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch {
      return 0
    }
    let added = 0
    for (const n of names) {
      if (n === name || !n.startsWith(SESSION_FILE_PREFIX) || !n.endsWith('.json')) continue
      const file = join(dir, n)
      let mtime: number
      try {
        mtime = statSync(file).mtimeMs
      } catch {
        continue
      }
      if (this.#siblingMtimes.get(file) === mtime) continue
      this.#siblingMtimes.set(file, mtime)
      added += this.#load(file)
    }
    if (added > 0) this.#new += added // kept in our own file from now on
    return added
  }

  /**
   * Writes the sessions to the file (atomic replace, mode 0600) when agents got their first
   * session since the last save, or every few minutes when sessions were only refreshed;
   * `force` whenever anything changed.
   */
  save(force = false): void {
    const file = this.#file
    if (file === undefined) return
    const due =
      this.#new > 0 ||
      (this.#refreshed > 0 && (force || Date.now() - this.#lastSave >= REFRESH_SAVE_MS))
    if (!due) return
    const counts = [this.#new, this.#refreshed] as const
    this.#new = 0
    this.#refreshed = 0
    this.#lastSave = Date.now()
    const sessions = [...this.#sessions].map(([k, v]) => [k, v.s.toString('base64'), v.at])
    const tmp = `${file}.${process.pid}.tmp`
    try {
      writeFileSync(tmp, JSON.stringify({ v: 1, sessions }), { mode: 0o600 })
      chmodSync(tmp, 0o600) // writeFileSync's mode is masked by the umask
      renameSync(tmp, file)
    } catch {
      // retried at the next tick
      this.#new += counts[0]
      this.#refreshed += counts[1]
    }
  }

  /** Stops the save timer and writes what changed. */
  close(): void {
    if (this.#saveTimer !== undefined) clearInterval(this.#saveTimer)
    this.#saveTimer = undefined
    this.save(true)
  }
}
