import { expect, test } from 'bun:test'
import { HEALTH_EXIT, runHealth } from './run-health.ts'

async function run(args: string[]) {
  let out = ''
  let err = ''
  const code = await runHealth(args, {
    stdout: (s) => {
      out += s
    },
    stderr: (s) => {
      err += s
    },
    env: {},
  })
  return { code, out, err }
}

test('usage: unknown options and bad timeouts exit 2 before anything is read', async () => {
  for (const args of [['--frob'], ['--timeout', '0'], ['--timeout', 'soon'], ['extra']]) {
    const r = await run(args)
    expect(r.code, args.join(' ')).toBe(HEALTH_EXIT.USAGE)
    expect(r.err).toStartWith('keylime health: ')
    expect(r.err).toContain('usage: keylime health')
  }
  const help = await run(['--help'])
  expect(help.code).toBe(HEALTH_EXIT.HEALTHY)
  expect(help.out).toContain('--timeout SECONDS')
})
