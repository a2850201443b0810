/**
 * What the tenant prints, and where.
 *
 * - Human mode (default): upstream's operator view. Results go to stdout as upstream logs them
 *   (`Agent list from Registrar (127.0.0.1:8891) retrieved:` followed by a one-line JSON in
 *   Python `json.dumps` style); info, warnings and progress go to stderr in upstream's log format
 *   (`2024-05-01 10:00:00.123 - keylime.tenant - INFO - …`).
 * - `--json` (upstream #1159): exactly one JSON document on stdout per command,
 *   `{"command", "exit_code", "results"}` on success and `{"command", "exit_code", "error"}` on
 *   failure; stderr keeps the progress lines.
 *
 * Nothing printed here may contain K, U, V, keys or payload bytes: callers pass results that
 * never hold them.
 *
 * @module
 */
import { pythonJsonDumps } from '../protocol/python-json.ts'
import type { TenantError } from './errors.ts'

/** Sinks of the output (the CLI's `CliIo`). */
export interface OutputSinks {
  stdout: (s: string) => void
  stderr: (s: string) => void
}

function two(n: number): string {
  return String(n).padStart(2, '0')
}

/** `YYYY-mm-dd HH:MM:SS.mmm`, as upstream's `logging.conf` `datefmt` plus msecs. */
function timestamp(d = new Date()): string {
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`
}

/**
 * Serialises like Python's `json.dumps` with default separators (`", "`, `": "`), which is what
 * upstream's tenant logs; keys keep their order. Non-ASCII characters are written as they are
 * (upstream's `ensure_ascii` would escape them; the two parse to the same JSON).
 */
export function pyJson(value: unknown): string {
  return pythonJsonDumps(value, { ensureAscii: false })
}

/** The printer of one tenant invocation. */
export class TenantOutput {
  readonly json: boolean
  readonly #sinks: OutputSinks

  constructor(sinks: OutputSinks, json: boolean) {
    this.#sinks = sinks
    this.json = json
  }

  #log(level: string, msg: string): void {
    this.#sinks.stderr(`${timestamp()} - keylime.tenant - ${level} - ${msg}\n`)
  }

  /** An informational line (stderr). */
  info(msg: string): void {
    this.#log('INFO', msg)
  }

  /** A warning (stderr). */
  warn(msg: string): void {
    this.#log('WARNING', msg)
  }

  /** A progress line for waits and retries (stderr). */
  progress(msg: string): void {
    this.#log('INFO', msg)
  }

  /**
   * Prints the command's result: in human mode `text` (or the results as JSON), in JSON mode the
   * success document.
   */
  result(command: string, results: unknown, text?: string): void {
    if (this.json) {
      this.#sinks.stdout(`${JSON.stringify({ command, exit_code: 0, results })}\n`)
    } else if (text !== undefined) {
      this.#sinks.stdout(text.endsWith('\n') ? text : `${text}\n`)
    } else {
      this.#sinks.stdout(`${pyJson(results)}\n`)
    }
  }

  /** Prints a failure: the error document in JSON mode, `ERROR - message` + hint otherwise. */
  error(command: string, err: TenantError): void {
    if (this.json) {
      const error: Record<string, unknown> = { code: err.code, message: err.message }
      if (err.hint !== undefined) error.hint = err.hint
      if (err.httpStatus !== undefined) error.http_status = err.httpStatus
      if (err.serverStatus !== undefined) error.server_status = err.serverStatus
      this.#sinks.stdout(`${JSON.stringify({ command, exit_code: err.exitCode, error })}\n`)
    }
    this.#log('ERROR', err.message)
    if (err.hint !== undefined) this.#log('ERROR', `hint: ${err.hint}`)
  }
}
