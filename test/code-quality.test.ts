/**
 * The house-style gates (STYLE.md rules 11–12) run with the suites, so CI refuses a change that
 * breaks them: strict type check, Biome lint (errors), Prettier formatting.
 */
import { describe, expect, test } from 'bun:test'
import { resolve } from 'node:path'

const ROOT = resolve(import.meta.dir, '..')
const BIN = resolve(ROOT, 'node_modules/.bin')

function run(cmd: string[]): { code: number; out: string } {
  const p = Bun.spawnSync(cmd, { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' })
  return { code: p.exitCode, out: `${p.stdout.toString()}${p.stderr.toString()}` }
}

describe('code quality', () => {
  test('tsc --noEmit (strict tsconfig) reports no error', () => {
    const r = run([`${BIN}/tsc`, '--noEmit', '-p', 'tsconfig.json'])
    expect(r.out.trim()).toBe('')
    expect(r.code).toBe(0)
  }, 120_000)

  test('biome lint reports no error', () => {
    const r = run([`${BIN}/biome`, 'lint', '.'])
    expect(r.code, r.out.slice(-3000)).toBe(0)
  }, 60_000)

  test('prettier --check: every file is formatted', () => {
    const r = run([`${BIN}/prettier`, '--check', '.'])
    expect(r.code, r.out.slice(-3000)).toBe(0)
  }, 120_000)
})
