/**
 * The first hour of an operator, as gates: `npm ci` accepts the tracked lock file (it refuses one
 * out of step with package.json, which used to push scripts into a lock-rewriting `npm install`),
 * no script installs with anything but `npm ci`, and the CA keys the README puts in the checkout
 * (`KEYLIME_DIR=$PWD/.keylime`) cannot be committed by accident.
 */
import { describe, expect, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dir, '..')

function run(cmd: string[]): { code: number; out: string } {
  const p = Bun.spawnSync(cmd, { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' })
  return { code: p.exitCode, out: `${p.stdout.toString()}${p.stderr.toString()}` }
}

const npm = Bun.which('npm')
const git = Bun.which('git')
const inCheckout = git !== null && run([git, 'rev-parse', '--git-dir']).code === 0
if (npm === null) console.log('[install] SKIP lock-file check: npm is not on PATH')
if (!inCheckout) console.log('[install] SKIP .gitignore check: not a git checkout')

describe('install', () => {
  test.skipIf(npm === null)(
    'npm ci accepts package-lock.json as it is',
    () => {
      const r = run([
        npm as string,
        'ci',
        '--dry-run',
        '--ignore-scripts',
        '--no-audit',
        '--no-fund',
      ])
      expect(r.out).not.toContain('EUSAGE')
      expect(r.code, r.out.slice(-2000)).toBe(0)
    },
    60_000,
  )

  test('scripts, CI and the Containerfile install with npm ci only', () => {
    const files = [
      '.ci/run',
      'Containerfile',
      ...readdirSync(join(ROOT, 'scripts')).map((f) => `scripts/${f}`),
    ]
    for (const f of files) {
      const lines = readFileSync(join(ROOT, f), 'utf8')
        .split('\n')
        .filter((l) => !l.trimStart().startsWith('#'))
      expect(
        lines.filter((l) => /\bnpm (install|i)\b/.test(l)),
        f,
      ).toEqual([])
    }
  })

  test.skipIf(!inCheckout)('.keylime/ (CA private keys) is git-ignored', () => {
    const r = run([git as string, 'check-ignore', '-q', '.keylime/cv_ca/ca-private.pem'])
    expect(r.code).toBe(0)
  })
})
