import { describe, expect, test } from 'bun:test'
import { getSanEntries, parseSanConfig, sanHostname } from './san-entries.ts'

describe('SAN entries', () => {
  test('defaults: localhost, loopbacks, host name', () => {
    expect(getSanEntries({ hostname: 'node7' })).toEqual({
      dns: ['localhost', 'node7'],
      ips: ['127.0.0.1', '::1'],
    })
  })

  test('bind address: IP added, unspecified skipped, host name as DNS', () => {
    expect(getSanEntries({ hostname: 'h', bindAddress: '10.1.2.3' }).ips).toContain('10.1.2.3')
    expect(getSanEntries({ hostname: 'h', bindAddress: '0.0.0.0' }).ips).toEqual([
      '127.0.0.1',
      '::1',
    ])
    expect(getSanEntries({ hostname: 'h', bindAddress: '::' }).ips).toEqual(['127.0.0.1', '::1'])
    expect(getSanEntries({ hostname: 'h', bindAddress: 'verifier.local' }).dns).toContain(
      'verifier.local',
    )
  })

  test('cert_subject_alternative_names: IPs and DNS split, deduplicated, sorted', () => {
    const s = getSanEntries({
      hostname: 'h',
      extra: ' b.example, 192.0.2.1 ,a.example,,fd00::1, localhost',
    })
    expect(s.dns).toEqual(['a.example', 'b.example', 'h', 'localhost'])
    expect(s.ips).toEqual(['127.0.0.1', '192.0.2.1', '::1', 'fd00::1'])
    expect(parseSanConfig('')).toEqual({ dns: [], ips: [] })
  })

  test('bind addresses of both roles: each specified one added', () => {
    const s = getSanEntries({ hostname: '', bindAddress: ['0.0.0.0', '192.0.2.7', ' reg.local '] })
    expect(s).toEqual({ dns: ['localhost', 'reg.local'], ips: ['127.0.0.1', '192.0.2.7', '::1'] })
  })

  test('the host name is left out inside a container (podman, Docker, systemd-nspawn)', () => {
    const probe = { exists: () => false, env: {}, hostname: () => 'node7' }
    expect(sanHostname(probe)).toBe('node7')
    expect(sanHostname({ ...probe, env: { container: 'podman' } })).toBeUndefined()
    expect(sanHostname({ ...probe, exists: (p) => p === '/run/.containerenv' })).toBeUndefined()
    expect(sanHostname({ ...probe, exists: (p) => p === '/.dockerenv' })).toBeUndefined()
  })
})
