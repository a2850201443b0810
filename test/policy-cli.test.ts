/**
 * The policy tools reached through the `keylime` dispatcher, as operators type them:
 * `keylime policy create runtime|measured-boot`, `keylime policy sign runtime` and the legacy
 * names (`keylime_create_policy`, `create_mb_refstate`).
 */
import { describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { MAIN_TS } from './support/control-plane-process.ts'

const FIX = resolve(import.meta.dir, 'fixtures')
const IMA_LOG = join(FIX, 'ima/vm/a/ascii_runtime_measurements')
const MB_LOG = join(FIX, 'mb/vm-plain/binary_bios_measurements')

function keylime(args: string[]) {
  const r = Bun.spawnSync([process.execPath, MAIN_TS, ...args], { stdout: 'pipe', stderr: 'pipe' })
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() }
}

describe('keylime policy', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kl-policy-'))

  test('create runtime from a real IMA log', () => {
    const out = join(dir, 'runtime.json')
    const r = keylime(['policy', 'create', 'runtime', '-m', IMA_LOG, '-o', out])
    expect(r.err).toBe('')
    expect(r.code).toBe(0)
    const policy = JSON.parse(readFileSync(out, 'utf8'))
    expect(policy.meta.version).toBe(1)
    expect(Object.keys(policy.digests)).toContain('boot_aggregate')
  })

  test('create measured-boot from a real UEFI log; Secure Boot off needs -i', () => {
    const out = join(dir, 'refstate.json')
    const refused = keylime(['policy', 'create', 'measured-boot', '-e', MB_LOG, '-o', out])
    expect(refused.code).toBe(1)
    expect(refused.err).toContain('--without-secureboot')
    const ok = keylime(['policy', 'create', 'measured-boot', '-e', MB_LOG, '-i', '-o', out])
    expect(ok.code).toBe(0)
    expect(JSON.parse(readFileSync(out, 'utf8'))).toHaveProperty('scrtm_and_bios')
  })

  test('legacy names dispatch to the same tools', () => {
    const out = join(dir, 'legacy.json')
    const r = keylime(['keylime_create_policy', '-m', IMA_LOG, '-o', out])
    expect(r.code).toBe(0)
    expect(JSON.parse(readFileSync(out, 'utf8')).digests).toBeDefined()
  })

  test('usage errors exit 2', () => {
    expect(keylime(['policy', 'frobnicate', 'runtime']).code).toBe(2)
    expect(keylime(['policy', 'create', 'runtime', '--no-such-flag']).code).toBe(2)
  })
})
