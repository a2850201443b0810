/**
 * Issue 17, finding 1 (last line of defence): an exception or rejection nothing caught — from a
 * timer, a Worker's `onmessage` or a promise — is logged by the control plane's guard and the
 * process keeps running; the log is rate-limited (10 lines a minute, not one per error).
 *
 * @module
 */
import { expect, test } from 'bun:test'
import { join } from 'node:path'
import { GUARD_LINES_PER_MINUTE } from '../../src/cli/install-last-resort-guard.ts'

test('uncaught exceptions and rejections are logged, rate-limited, and the process lives on', async () => {
  const proc = Bun.spawn(
    [process.execPath, join(import.meta.dir, '../support/guarded-process.ts')],
    {
      stdout: 'pipe',
      stderr: 'pipe',
    },
  )
  const [out, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
  expect(code).toBe(0)
  const alive = /alive (\{.*\}) lines=(\d+)/.exec(out)
  expect(alive).not.toBeNull()
  const counts = JSON.parse(alive?.[1] as string) as Record<string, number>
  expect(counts).toEqual({ uncaughtExceptions: 50, unhandledRejections: 25 })
  expect(Number(alive?.[2])).toBe(GUARD_LINES_PER_MINUTE)
  expect(out).toContain('uncaught exception caught by the last-resort guard; still serving')
  expect(out).toContain('Cannot convert object to primitive value')
}, 30_000)
