/**
 * Entry point of the `keylime` binary (and of its symlinks `keylime_tenant`, `keylime_ca`,
 * `keylime_verifier`, `keylime_registrar`, …).
 *
 * @module
 */
import 'reflect-metadata'
import { main } from './cli/main.ts'

/**
 * A writer on `stream` that remembers back-pressure: `process.exit` drops what a pipe
 * (`keylime … | jq`, podman's log pipe) has not taken yet, so the exit waits for `drained()`.
 */
function pipeWriter(stream: NodeJS.WriteStream) {
  let drained: Promise<void> = Promise.resolve()
  return {
    write: (s: string) => {
      if (!stream.write(s)) drained = new Promise((resolve) => stream.once('drain', resolve))
    },
    drained: () => drained,
  }
}

const stdout = pipeWriter(process.stdout)
const stderr = pipeWriter(process.stderr)
const result = await main(process.argv0, process.argv.slice(2), {
  stdout: stdout.write,
  stderr: stderr.write,
  env: process.env,
})
if (result !== 'running') {
  await Promise.all([stdout.drained(), stderr.drained()])
  process.exit(result)
}
