/**
 * The refstate tools as CLI functions returning exit codes (0 ok, 1 error, 2 usage):
 *
 * - `keylime policy create measured-boot -e <eventlog> [-i|--without-secureboot] [-o <out.json>|-]`
 *   (upstream `keylime/policy/create_mb_policy.py`);
 * - `create_mb_refstate [-i] <eventlog> <out.json>` (upstream `scripts/create_mb_refstate`; the output
 *   `-` means stdout).
 *
 * @module
 */

import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createRefstate } from './create-refstate.ts'
import { isMbError } from '../mb/errors.ts'
import type { ToolContext } from '../tool-context.ts'
import { parseEventLog } from '../mb/parse-event-log.ts'

const MAX_LOG_BYTES = 64 * 1024 * 1024

async function build(
  ctx: ToolContext,
  logPath: string,
  out: string,
  withoutSecureboot: boolean,
): Promise<number> {
  let bytes: Uint8Array
  try {
    const file = Bun.file(resolve(ctx.cwd, logPath))
    if (file.size > MAX_LOG_BYTES) {
      ctx.stderr.write(`error: ${logPath} is larger than ${MAX_LOG_BYTES} bytes\n`)
      return 1
    }
    bytes = await file.bytes()
  } catch (e) {
    ctx.stderr.write(
      `error: cannot read ${logPath}: ${e instanceof Error ? e.message : String(e)}\n`,
    )
    return 1
  }
  try {
    const log = parseEventLog(bytes)
    if (log.events.length <= 1) {
      ctx.stderr.write('error: no events found in the binary boot measurements log\n')
      return 1
    }
    const refstate = createRefstate(log, {
      withoutSecureboot,
      warn: (m) => ctx.stderr.write(`warning: ${m}\n`),
    })
    const json = JSON.stringify(refstate)
    if (out === '-') ctx.stdout.write(`${json}\n`)
    else await Bun.write(resolve(ctx.cwd, out), `${json}\n`)
    return 0
  } catch (e) {
    if (!isMbError(e)) throw e
    ctx.stderr.write(
      `error: parsing of binary boot measurements (${logPath}) failed: ${e.message} [${e.code}]\n`,
    )
    return 1
  }
}

const USAGE_POLICY =
  'usage: keylime policy create measured-boot -e EVENTLOG [-i|--without-secureboot] [-o OUTPUT|-]\n'

/** `keylime policy create measured-boot …` (argv after `measured-boot`). */
export async function runPolicyCreateMeasuredBoot(
  argv: readonly string[],
  ctx: ToolContext,
): Promise<number> {
  let values: {
    'eventlog-file'?: string
    'without-secureboot'?: boolean
    output?: string
    help?: boolean
  }
  try {
    ;({ values } = parseArgs({
      args: [...argv],
      options: {
        'eventlog-file': { type: 'string', short: 'e' },
        'without-secureboot': { type: 'boolean', short: 'i' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }))
  } catch (e) {
    ctx.stderr.write(`${USAGE_POLICY}error: ${e instanceof Error ? e.message : String(e)}\n`)
    return 2
  }
  if (values.help === true) {
    ctx.stdout.write(USAGE_POLICY)
    return 0
  }
  if (values['eventlog-file'] === undefined) {
    ctx.stderr.write(
      `${USAGE_POLICY}error: the following arguments are required: -e/--eventlog-file\n`,
    )
    return 2
  }
  return build(
    ctx,
    values['eventlog-file'],
    values.output ?? '-',
    values['without-secureboot'] === true,
  )
}

const USAGE_SCRIPT = 'usage: create_mb_refstate [-i|--without-secureboot] EVENTLOG OUTPUT\n'

/** `create_mb_refstate [-i] <eventlog> <out.json>`. */
export async function runCreateMbRefstate(
  argv: readonly string[],
  ctx: ToolContext,
): Promise<number> {
  let parsed: { values: { 'without-secureboot'?: boolean; help?: boolean }; positionals: string[] }
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        'without-secureboot': { type: 'boolean', short: 'i' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    })
  } catch (e) {
    ctx.stderr.write(`${USAGE_SCRIPT}error: ${e instanceof Error ? e.message : String(e)}\n`)
    return 2
  }
  if (parsed.values.help === true) {
    ctx.stdout.write(USAGE_SCRIPT)
    return 0
  }
  const [logPath, out] = parsed.positionals
  if (logPath === undefined || out === undefined || parsed.positionals.length !== 2) {
    ctx.stderr.write(USAGE_SCRIPT)
    return 2
  }
  return build(ctx, logPath, out, parsed.values['without-secureboot'] === true)
}
