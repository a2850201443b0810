import { describe, expect, test } from 'bun:test'
import { PROGRAM_NAMES, resolveCommand } from './resolve-command.ts'

describe('resolveCommand', () => {
  test('no arguments: both roles', () => {
    expect(resolveCommand('keylime', [])).toEqual({
      kind: 'control-plane',
      roles: { verifier: true, registrar: true },
    })
    // From source the argv0 is the runtime; still the control plane.
    expect(resolveCommand('/usr/bin/bun', []).kind).toBe('control-plane')
  })

  test('role flags select roles', () => {
    expect(resolveCommand('keylime', ['--verifier'])).toEqual({
      kind: 'control-plane',
      roles: { verifier: true, registrar: false },
    })
    expect(resolveCommand('keylime', ['--registrar', '--verifier'])).toEqual({
      kind: 'control-plane',
      roles: { verifier: true, registrar: true },
    })
    expect(resolveCommand('keylime', ['registrar']).kind).toBe('control-plane')
  })

  test('busybox-style names run upstream commands verbatim', () => {
    expect(resolveCommand('/usr/bin/keylime_tenant', ['-c', 'reglist'])).toEqual({
      kind: 'tenant',
      args: ['-c', 'reglist'],
    })
    expect(resolveCommand('keylime_ca', ['-c', 'init'])).toEqual({
      kind: 'ca',
      args: ['-c', 'init'],
    })
    expect(resolveCommand('keylime_verifier', [])).toEqual({
      kind: 'control-plane',
      roles: { verifier: true, registrar: false },
    })
    expect(resolveCommand('keylime_registrar', [])).toEqual({
      kind: 'control-plane',
      roles: { verifier: false, registrar: true },
    })
    expect(resolveCommand('keylime_create_policy', ['-m', 'x'])).toEqual({
      kind: 'tool',
      tool: 'keylime_create_policy',
      args: ['-m', 'x'],
    })
    expect(resolveCommand('keylime-policy', ['create', 'runtime'])).toEqual({
      kind: 'policy',
      args: ['create', 'runtime'],
    })
  })

  test('sub-commands of keylime', () => {
    expect(resolveCommand('keylime', ['tenant', '-c', 'cvlist'])).toEqual({
      kind: 'tenant',
      args: ['-c', 'cvlist'],
    })
    expect(resolveCommand('keylime', ['ca', '-c', 'pkg', '-n', 'x']).kind).toBe('ca')
    expect(resolveCommand('keylime', ['policy', 'sign', 'runtime']).kind).toBe('policy')
    expect(resolveCommand('keylime', ['health'])).toEqual({ kind: 'health', args: [] })
    expect(resolveCommand('/usr/local/bin/keylime-health', [])).toEqual({
      kind: 'health',
      args: [],
    })
    expect(resolveCommand('keylime', ['health', '--registrar', '--timeout', '2'])).toEqual({
      kind: 'health',
      args: ['--registrar', '--timeout', '2'],
    })
    expect(resolveCommand('keylime', ['create_mb_refstate', 'a', 'b'])).toEqual({
      kind: 'tool',
      tool: 'create_mb_refstate',
      args: ['a', 'b'],
    })
  })

  test('bad invocations are usage errors', () => {
    expect(resolveCommand('keylime', ['bogus'])).toEqual({
      kind: 'usage-error',
      message: 'unknown command "bogus"',
    })
    expect(resolveCommand('keylime', ['--verifier', '--frob'])).toEqual({
      kind: 'usage-error',
      message: 'unknown argument "--frob"',
    })
    expect(resolveCommand('keylime', ['--help'])).toEqual({ kind: 'help' })
  })

  test('every symlink name the build makes is dispatched on (none starts both roles)', () => {
    for (const name of PROGRAM_NAMES) {
      expect(resolveCommand(`/usr/local/bin/${name}`, [])).not.toEqual(
        resolveCommand('keylime', []),
      )
    }
  })
})
