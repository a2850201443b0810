/**
 * Preloaded (`bun --preload`) into a control-plane child by the last-resort guard test: on SIGUSR2
 * it lets exceptions escape a Worker's `onmessage` (the path of issue 17, finding 1), timers and
 * promises, 25 times each, then prints `thrown` once they have all fired.
 *
 * Each timer and rejection is scheduled by the `onmessage` that throws before it, so the Worker's
 * exception is always among the first the guard logs (its budget is a few lines a minute).
 *
 * @module
 */
process.on('SIGUSR2', () => {
  const worker = new Worker(
    URL.createObjectURL(new Blob(['self.onmessage = (e) => postMessage(e.data)'])),
  )
  worker.onmessage = (e) => {
    const i = e.data as number
    setTimeout(() => {
      throw new Error(`timer ${i}`)
    }, i)
    setTimeout(() => void Promise.reject(new Error(`rejection ${i}`)), 200)
    throw new TypeError('Cannot convert object to primitive value')
  }
  for (let i = 0; i < 25; i++) worker.postMessage(i)
  setTimeout(() => {
    worker.terminate()
    console.log('thrown')
  }, 600)
})
