/**
 * What a command-line tool function (`keylime policy …`, `keylime_ca`, …) writes to and resolves
 * relative paths against, so tools can be run in-process by tests and by the dispatcher alike.
 *
 * @module
 */

/** Output streams and working directory of a tool invocation. */
export interface ToolContext {
  /** Standard output. */
  stdout: { write(s: string): unknown }
  /** Standard error. */
  stderr: { write(s: string): unknown }
  /** Working directory for relative paths. */
  cwd: string
}
