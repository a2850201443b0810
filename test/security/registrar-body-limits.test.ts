/**
 * Issue 17, finding 6: memory on the unauthenticated registrar port. On c9aa72c the plain port
 * buffered bodies up to 100 MiB with no bound on concurrent uploads: 16 parallel 99 MB bodies took
 * the process to 2.8 GB RSS and `/version` to 4 s.
 *
 * Here a real `keylime --registrar` child process (its RSS read from /proc) is sent 16 bodies of
 * 99 MB at once, half with a `Content-Length`, half chunked without one. Each must be refused with
 * a 413 in the envelope, the process must grow by less than 200 MB (and stay under 300 MB in total
 * on PostgreSQL; embedded PGlite alone starts at ~315 MB), and `/version` must keep answering
 * within a second. The uploads stop early if the process grows past the bound, so the test fails
 * fast (and cheaply) on a build that buffers them.
 */
import 'reflect-metadata'
import { afterAll, describe, expect, test } from 'bun:test'
import type { Socket } from 'node:net'
import { databaseTargets, type FreshLocation } from '../support/databases.ts'
import { MiB, upload, vm } from '../support/hostile-upload.ts'
import { startRegistrarProcess } from '../support/registrar-process.ts'

const CLIENTS = 16
const BODY = 99 * MiB
const GROWTH_LIMIT = 200 * MiB
const TOTAL_LIMIT_POSTGRES = 300 * MiB

const cleanups: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})

for (const target of databaseTargets()) {
  describe(`registrar plain port under 16 × 99 MB uploads (${target.name})`, () => {
    test('413 in the envelope, bounded RSS, /version responsive', async () => {
      const location: FreshLocation = await target.freshLocation()
      cleanups.push(() => location.drop())
      const { run, ports, url: base } = await startRegistrarProcess(location.url)
      cleanups.push(() => run.stop())
      const pid = run.proc.pid
      const before = vm(pid, 'VmRSS')

      const sockets = new Set<Socket>()
      let peak = before
      let versionMax = 0
      let done = false
      const sampler = setInterval(() => {
        peak = Math.max(peak, vm(pid, 'VmRSS'))
        // Stop feeding a process that buffers the uploads: the test has failed already.
        if (peak - before > GROWTH_LIMIT) for (const s of sockets) s.destroy()
      }, 20)
      const prober = (async () => {
        while (!done) {
          const t0 = performance.now()
          const res = await fetch(`${base}/version`)
          await res.arrayBuffer()
          versionMax = Math.max(versionMax, performance.now() - t0)
          await Bun.sleep(50)
        }
      })()
      const uploads = await Promise.all(
        Array.from({ length: CLIENTS }, (_, i) =>
          upload(ports.registrar, i % 2 === 1, BODY, sockets),
        ),
      )
      done = true
      await prober
      clearInterval(sampler)
      peak = Math.max(peak, vm(pid, 'VmRSS'))

      expect(peak - before).toBeLessThan(GROWTH_LIMIT)
      if (target.name === 'postgresql') expect(vm(pid, 'VmHWM')).toBeLessThan(TOTAL_LIMIT_POSTGRES)
      expect(versionMax).toBeLessThan(1000)
      const envelope413 = {
        code: 413,
        status: 'Request body exceeds the maximum upload size of 65536 bytes',
        results: {},
      }
      // Cut off early: the server read at most the cap plus its 1 MiB drain, so each client could
      // only fill socket buffers. Whatever answer a client read before the close is the 413
      // envelope (a reset may also wipe it from the client's buffers: TCP's rule, not ours).
      for (const { answer, sent } of uploads) {
        expect(sent).toBeLessThan(BODY / 4)
        if (answer === '') continue
        expect(answer).toStartWith('HTTP/1.1 413')
        expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual(envelope413)
      }
      // A body a little over the cap, declared or chunked, is read to its end and dropped, and
      // the client reads its 413 envelope.
      for (const chunked of [false, true]) {
        const { answer } = await upload(ports.registrar, chunked, 200_000, sockets)
        expect(answer).toStartWith('HTTP/1.1 413')
        expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual(envelope413)
      }
    }, 120_000)
  })
}
