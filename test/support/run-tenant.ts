/**
 * `keylime_tenant` run in-process, as the tenant tests drive it: its exit code and what it wrote.
 *
 * @module
 */
import { main } from '../../src/cli/main.ts'

/** One tenant run. */
export interface TenantRun {
  code: number
  out: string
  err: string
}

/** Runs `keylime_tenant args` with `env` as its whole environment. */
export async function runTenant(args: string[], env: Record<string, string>): Promise<TenantRun> {
  let out = ''
  let err = ''
  const code = (await main('keylime_tenant', args, {
    stdout: (s) => {
      out += s
    },
    stderr: (s) => {
      err += s
    },
    env,
  })) as number
  return { code, out, err }
}
