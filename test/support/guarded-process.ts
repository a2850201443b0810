/**
 * A child process for the last-resort guard test: installs the control plane's guard, then lets
 * an exception escape a timer, a Worker's `onmessage` (the path of issue 17, finding 1) and a
 * promise, 25 times each; if it is still alive afterwards it prints the guard's counts and the
 * number of log lines, and exits 0.
 *
 * @module
 */
import { installLastResortGuard } from '../../src/cli/install-last-resort-guard.ts'
import { getLogger, setLogSink } from '../../src/log/logger.ts'

let lines = 0
setLogSink((l) => {
  lines++
  process.stdout.write(`${l}\n`)
})
const { counts } = installLastResortGuard(getLogger('verifier'))
const worker = new Worker(
  URL.createObjectURL(new Blob(['self.onmessage = (e) => postMessage(e.data)'])),
)
worker.onmessage = () => {
  throw new TypeError('Cannot convert object to primitive value')
}
for (let i = 0; i < 25; i++) {
  worker.postMessage(i)
  setTimeout(() => {
    throw new Error(`timer ${i}`)
  }, i)
  setTimeout(() => void Promise.reject(new Error(`rejection ${i}`)), 200)
}
setTimeout(() => {
  worker.terminate()
  console.log(`alive ${JSON.stringify(counts)} lines=${lines}`)
  process.exit(0)
}, 600)
