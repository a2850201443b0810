/**
 * Entry point of the `keylime` binary (and of its symlinks `keylime_tenant`, `keylime_ca`,
 * `keylime_verifier`, `keylime_registrar`, …).
 *
 * @module
 */
import 'reflect-metadata'
import { main } from './cli/main.ts'

const result = await main(process.argv0, process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
})
if (result !== 'running') process.exit(result)
