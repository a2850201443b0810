/**
 * A check worker that misbehaves, for tests of the check pool's failure paths: it starts like the
 * real one, then answers every quote job with `error` (a check that threw), except when the job's
 * nonce is `die`, where it throws out of its message handler (the worker dies).
 *
 * @module
 */
declare const self: Worker

self.onmessage = (e: MessageEvent<{ type?: string; seq?: number; nonce?: string }>) => {
  const m = e.data
  if (m.type === 'init') {
    postMessage({ seq: -1, kind: 'ready' })
    return
  }
  if (m.nonce === 'die') throw new Error('injected worker death')
  postMessage({ seq: m.seq, kind: 'error', error: 'TypeError: injected check failure' })
}
