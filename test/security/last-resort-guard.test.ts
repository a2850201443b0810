/**
 * Issue 17, finding 1 (last line of defence): in a real `keylime --verifier` process, exceptions
 * nothing catches — from a Worker's `onmessage`, timers and promises (injected by a preloaded
 * module on a signal) — are logged by the control plane's guard, rate-limited (10 lines a minute,
 * not one per error), and the process keeps serving. c9aa72c exited at the first one.
 *
 * @module
 */
import { afterAll, expect, test } from 'bun:test'
import { join } from 'node:path'
import { loadCaDir } from '../support/fleet/load-ca-dir.ts'
import { GUARD_LINES_PER_MINUTE } from '../../src/cli/install-last-resort-guard.ts'
import { spawnVerifier } from '../support/control-plane-process.ts'

const cleanups: (() => unknown)[] = []
afterAll(() => {
  for (const c of cleanups.reverse()) c()
})

test('uncaught exceptions and rejections are logged, rate-limited, and the verifier keeps serving', async () => {
  const { run, url, dir } = await spawnVerifier(
    {},
    { bunArgs: ['--preload', join(import.meta.dir, '../support/throw-on-signal.ts')] },
  )
  cleanups.push(() => run.proc.exitCode === null && run.proc.kill('SIGKILL'))
  run.proc.kill('SIGUSR2')
  await run.waitFor(/^thrown$/m, 10_000)
  await Bun.sleep(100)
  expect(run.proc.exitCode).toBeNull()
  const ca = await loadCaDir(join(dir, 'cv_ca'))
  const res = await fetch(`${url}/version`, { tls: ca.client } as RequestInit)
  expect(res.status).toBe(200)
  const lines = run.output().split('\n')
  const guarded = lines.filter((l) => l.includes('caught by the last-resort guard; still serving'))
  expect(guarded).toHaveLength(GUARD_LINES_PER_MINUTE)
  expect(guarded.some((l) => l.includes('Cannot convert object to primitive value'))).toBe(true)
  expect(await run.stop()).toBe(0)
}, 60_000)
