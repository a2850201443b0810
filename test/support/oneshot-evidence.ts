/**
 * Evidence made the way keylime-tests' scenarios make it on a host, for the `test/keylime-tests`
 * mirrors: a measured-boot log replayed into a swtpm (upstream: `tsseventextend -tpm -if <log>`;
 * here `tpm2_eventlog` reads the events, independent of our parser, and `tpm2_pcrextend` extends
 * them), an `ima-ng` measurement list whose entries are extended into PCR 10 as the kernel does,
 * and our CLI tools run in-process.
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

function u32le(n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return b
}

/** A growing `ima-ng` list (sha256 file digests) and the PCR 10 extends it implies. */
export class ImaList {
  #lines: string[] = []

  /** The list as `ascii_runtime_measurements` shows it. */
  get text(): string {
    return this.#lines.join('')
  }

  /** Appends `path` with file digest `digestHex` and extends PCR 10 (sha256 bank) with it. */
  measure(tpm: Tpm2ToolsAgent, path: string, digestHex: string): void {
    const d = Buffer.concat([Buffer.from('sha256:\0', 'latin1'), Buffer.from(digestHex, 'hex')])
    const n = Buffer.concat([Buffer.from(path, 'utf8'), Buffer.from([0])])
    const template = Buffer.concat([u32le(d.byteLength), d, u32le(n.byteLength), n])
    const sha1 = createHash('sha1').update(template).digest('hex')
    tpm.must(['tpm2_pcrextend', `10:sha256=${createHash('sha256').update(template).digest('hex')}`])
    this.#lines.push(`10 ${sha1} ima-ng sha256:${digestHex} ${path}\n`)
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
