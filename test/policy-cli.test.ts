/**
 * The policy tools reached through the `keylime` dispatcher, as operators type them:
 * `keylime policy create runtime|measured-boot`, `keylime policy sign runtime` and the legacy
 * names (`keylime_create_policy`, `keylime_convert_runtime_policy`, `create_mb_refstate`).
 */
import { describe, expect, test } from 'bun:test'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { MAIN_TS } from './support/control-plane-process.ts'

const FIX = resolve(import.meta.dir, 'fixtures')
const IMA_LOG = join(FIX, 'ima/vm/a/ascii_runtime_measurements')
const MB_LOG = join(FIX, 'mb/vm-plain/binary_bios_measurements')

function keylime(args: string[], asUser: string[] = []) {
  const r = Bun.spawnSync([...asUser, process.execPath, MAIN_TS, ...args], {
    stdout: 'pipe',
    stderr: 'pipe',
    env: { ...process.env, BUN_RUNTIME_TRANSPILER_CACHE_PATH: '0' },
  })
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() }
}

/** Root bypasses file modes: as root, the tool runs as `nobody` (setpriv); else as this user. */
const IS_ROOT = process.getuid?.() === 0
const HAS_SETPRIV = Bun.which('setpriv') !== null
const AS_UNPRIVILEGED = IS_ROOT
  ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--']
  : []

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

  test('keylime_convert_runtime_policy: flat and JSON allowlists, old policies, excludes', () => {
    const d1 = 'a'.repeat(64)
    const d2 = 'b'.repeat(64)
    const flat = join(dir, 'allowlist.txt')
    writeFileSync(flat, `${d1}  /usr/bin/true\n${d2}  %keyring:.ima\n\n`)
    const excludes = join(dir, 'excludes.txt')
    writeFileSync(excludes, '/tmp/.*\n')
    const out = join(dir, 'converted.json')
    const r = keylime(['keylime_convert_runtime_policy', '-a', flat, '-e', excludes, '-o', out])
    expect(r.code, r.err).toBe(0)
    const p = JSON.parse(readFileSync(out, 'utf8'))
    expect(p.meta.version).toBe(1)
    expect(p.digests).toEqual({ '/usr/bin/true': [d1] })
    expect(p.keyrings).toEqual({ '.ima': [d2] })
    expect(p.excludes).toEqual(['/tmp/.*'])

    const json = join(dir, 'allowlist.json')
    writeFileSync(json, JSON.stringify({ meta: { version: 1 }, hashes: { '/bin/sh': [d2] } }))
    expect(keylime(['keylime_convert_runtime_policy', '-a', json, '-o', out]).code).toBe(0)
    expect(JSON.parse(readFileSync(out, 'utf8')).digests).toEqual({ '/bin/sh': [d2] })

    const old = join(dir, 'old-policy.json')
    writeFileSync(old, JSON.stringify({ meta: { version: 1 }, digests: { '/bin/ls': [d1] } }))
    const asAllowlist = keylime(['keylime_convert_runtime_policy', '-a', old, '-o', out])
    expect(asAllowlist.code).toBe(1)
    expect(asAllowlist.err).toContain('-i')
    expect(keylime(['keylime_convert_runtime_policy', '-i', old, '-o', out]).code).toBe(0)
    expect(JSON.parse(readFileSync(out, 'utf8')).digests).toEqual({ '/bin/ls': [d1] })

    const bad = join(dir, 'bad-allowlist.json')
    writeFileSync(bad, JSON.stringify({ hashes: { '/bin/sh': 'not-a-list' } }))
    const refused = keylime(['keylime_convert_runtime_policy', '-a', bad, '-o', out])
    expect(refused.code).toBe(1)
    expect(refused.err).toContain('keylime_convert_runtime_policy:')
    expect(keylime(['keylime_convert_runtime_policy', '-a', flat]).code).toBe(2)
    expect(keylime(['keylime_convert_runtime_policy', '-a', flat, '-i', old, '-o', out]).code).toBe(
      2,
    )
  })

  test('usage errors exit 2', () => {
    expect(keylime(['policy', 'frobnicate', 'runtime']).code).toBe(2)
    expect(keylime(['policy', 'create', 'runtime', '--no-such-flag']).code).toBe(2)
  })

  // Run as a user that cannot read everything (the container's uid 490 without `--user 0`), the
  // tree walk used to leave unreadable files out silently, exit 0, and a policy missing them.
  test.skipIf(IS_ROOT && !HAS_SETPRIV)(
    'create runtime --rootfs warns about what it cannot read, naming count and paths',
    () => {
      const root = mkdtempSync(join(tmpdir(), 'kl-rootfs-'))
      chmodSync(root, 0o755)
      mkdirSync(join(root, 'bin'))
      writeFileSync(join(root, 'bin/tool'), 'tool\n')
      writeFileSync(join(root, 'bin/secret'), 'secret\n', { mode: 0o600 })
      mkdirSync(join(root, 'private'), { mode: 0o700 })
      writeFileSync(join(root, 'private/key'), 'key\n')
      if (!IS_ROOT) chmodSync(join(root, 'private'), 0o000)
      const r = keylime(['policy', 'create', 'runtime', '--rootfs', root], AS_UNPRIVILEGED)
      if (!IS_ROOT) chmodSync(join(root, 'private'), 0o700)
      expect(r.code).toBe(0)
      const warning = r.err.split('\n').find((l) => l.includes('warning:')) ?? ''
      expect(warning).toContain(`under ${root} could not be read (EACCES)`)
      expect(warning).toContain(join(root, 'private'))
      if (IS_ROOT) {
        // root-owned files only are hashed (as upstream): secret is unreadable, tool is in
        expect(warning).toContain(`2 paths under ${root}`)
        expect(warning).toContain(join(root, 'bin/secret'))
        expect(Object.keys(JSON.parse(r.out).digests)).toEqual(['/bin/tool'])
      }
    },
  )

  // `process.exit` used to drop what a pipe had not taken yet: podman's log pipe or `| jq` got the
  // first 64 KiB of a large policy.
  test('a large policy on stdout arrives whole through a slow pipe', () => {
    const allowlist = join(dir, 'big-allowlist.txt')
    const line = (i: number) => `${i.toString(16).padStart(64, '0')}  /usr/lib/file-${i}\n`
    writeFileSync(allowlist, Array.from({ length: 40_000 }, (_, i) => line(i)).join(''))
    const cmd = `'${process.execPath}' '${MAIN_TS}' policy create runtime -a '${allowlist}'`
    const r = Bun.spawnSync(['sh', '-c', `${cmd} | (sleep 0.5; cat)`], {
      stdout: 'pipe',
      stderr: 'pipe',
      env: { ...process.env, BUN_RUNTIME_TRANSPILER_CACHE_PATH: '0' },
    })
    expect(r.stdout.length).toBeGreaterThan(1 << 20)
    expect(Object.keys(JSON.parse(r.stdout.toString()).digests)).toHaveLength(40_000)
  })
})
