/**
 * Evidence made the way keylime-tests' scenarios make it on a host, for the `test/keylime-tests`
 * mirrors: a measured-boot log replayed into a swtpm (upstream: `tsseventextend -tpm -if <log>`;
 * here `tpm2_eventlog` reads the events, independent of our parser, and `tpm2_pcrextend` extends
 * them), `ima-ng` / `ima-sig` entries, extended into PCR 10 as the kernel does, and our CLI tools
 * run in-process.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ToolContext } from '../../src/tool-context.ts'
import type { Tpm2ToolsAgent } from './tpm2-tools-agent.ts'

/**
 * Extends every sha256 digest of the event log at `path` into its PCR, in log order. Returns the
 * number of events extended.
 */
export function extendEventLog(tpm: Tpm2ToolsAgent, path: string): number {
  const yaml = tpm.must(['tpm2_eventlog', path])
  const specs: string[] = []
  let pcr = -1
  let alg = ''
  for (const line of yaml.split('\n')) {
    const p = /^\s*PCRIndex:\s*(\d+)/.exec(line)
    if (p) pcr = Number(p[1])
    const a = /^\s*- AlgorithmId:\s*(\w+)/.exec(line)
    if (a) alg = a[1]!
    const d = /^\s*Digest:\s*"([0-9a-f]+)"/.exec(line)
    // Event 0 (EV_NO_ACTION) has a bare `Digest:` with no AlgorithmId and is not extended.
    if (d && alg === 'sha256') specs.push(`${pcr}:sha256=${d[1]}`)
    if (/^- EventNum:/.test(line)) alg = ''
  }
  // One process per spec keeps the order of extends unambiguous.
  for (const spec of specs) tpm.must(['tpm2_pcrextend', spec])
  return specs.length
}

function lengthPrefixed(b: Buffer): Buffer {
  const n = Buffer.alloc(4)
  n.writeUInt32LE(b.byteLength)
  return Buffer.concat([n, b])
}

/** One IMA entry: its `ascii_runtime_measurements` line and its template data. */
export interface ImaEntry {
  line: string
  template: Buffer
}

/**
 * An `ima-ng` entry for `path` with file digest `digestHex` (sha256), or an `ima-sig` one when
 * `sigHex` is given (the `security.ima` value, `signature_v2_hdr` and signature).
 */
export function imaEntry(path: string, digestHex: string, sigHex?: string): ImaEntry {
  const parts = [
    lengthPrefixed(
      Buffer.concat([Buffer.from('sha256:\0', 'latin1'), Buffer.from(digestHex, 'hex')]),
    ),
    lengthPrefixed(Buffer.from(`${path}\0`, 'utf8')),
  ]
  if (sigHex !== undefined) parts.push(lengthPrefixed(Buffer.from(sigHex, 'hex')))
  const template = Buffer.concat(parts)
  const sha1 = createHash('sha1').update(template).digest('hex')
  const name = sigHex === undefined ? 'ima-ng' : 'ima-sig'
  const tail = sigHex === undefined ? '' : ` ${sigHex}`
  return { line: `10 ${sha1} ${name} sha256:${digestHex} ${path}${tail}\n`, template }
}

/** A growing IMA list whose entries are extended into PCR 10 (sha256 bank) of a swtpm. */
export class ImaList {
  #lines: string[] = []

  /** The list as `ascii_runtime_measurements` shows it. */
  get text(): string {
    return this.#lines.join('')
  }

  /** Appends `path` ({@link imaEntry}) and extends PCR 10 with its template's sha256. */
  measure(tpm: Tpm2ToolsAgent, path: string, digestHex: string, sigHex?: string): void {
    const e = imaEntry(path, digestHex, sigHex)
    tpm.must([
      'tpm2_pcrextend',
      `10:sha256=${createHash('sha256').update(e.template).digest('hex')}`,
    ])
    this.#lines.push(e.line)
  }
}

/** A CLI tool function as the dispatcher runs it. */
export type ToolFn = (argv: string[], ctx: ToolContext) => Promise<number>

/** Runs `fn` in-process in a fresh directory; its stdout, or a throw with its stderr. */
export async function runTool(fn: ToolFn, argv: string[]): Promise<string> {
  let out = ''
  let err = ''
  const rc = await fn(argv, {
    cwd: mkdtempSync(join(tmpdir(), 'kl-tool-')),
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  })
  if (rc !== 0) throw new Error(`tool failed (${rc}): ${err}`)
  return out
}
