import { describe, expect, test } from 'bun:test'
import { ConfigError } from './errors.ts'
import { getKeylimeDir, isTestMode } from './get-keylime-dir.ts'

describe('getKeylimeDir', () => {
  test('KEYLIME_DIR wins; empty counts as unset', () => {
    expect(getKeylimeDir({ KEYLIME_DIR: '/srv/kl', KEYLIME_TEST: 'on' })).toBe('/srv/kl')
    expect(getKeylimeDir({ KEYLIME_DIR: '' })).toBe('/var/lib/keylime')
  })

  test('default is /var/lib/keylime; KEYLIME_TEST=on uses the current directory', () => {
    expect(getKeylimeDir({})).toBe('/var/lib/keylime')
    expect(getKeylimeDir({ KEYLIME_TEST: 'True' }, () => '/work/here')).toBe('/work/here')
    expect(getKeylimeDir({ KEYLIME_TEST: 'off' }, () => '/work/here')).toBe('/var/lib/keylime')
  })

  test('invalid KEYLIME_TEST is a ConfigError naming the variable', () => {
    expect(isTestMode({ KEYLIME_TEST: '1' })).toBe(true)
    expect(() => isTestMode({ KEYLIME_TEST: 'sometimes' })).toThrow(ConfigError)
    expect(() => getKeylimeDir({ KEYLIME_TEST: 'sometimes' })).toThrow(/KEYLIME_TEST/)
  })
})
