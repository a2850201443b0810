/**
 * Push-mode configuration: `[agent] mode = push` with rust-keylime's push-model agent option
 * names (`verifier_url`, `verifier_tls_ca_cert`, `attestation_interval_seconds`,
 * `exponential_backoff_*`, `registrar_tls_*`, `registrar_api_versions`), their defaults, their
 * checks, and that pull mode's options keep their meaning.
 *
 * @module
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isAgentError } from '../errors.ts'
import { loadAgentConfig } from './load-agent-config.ts'

const dir = mkdtempSync(join(tmpdir(), 'kl-agent-conf-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Loads `[agent]` with `body` and no environment. */
function load(body: string, env: Record<string, string> = {}) {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.conf`)
  writeFileSync(file, `[agent]\nkeylime_dir = "/kl"\n${body}\n`)
  const warnings: string[] = []
  const cfg = loadAgentConfig({ file, env, warn: (m) => warnings.push(m) })
  return { cfg, warnings }
}

describe('push-mode options', () => {
  test('defaults: pull mode, rust-keylime push defaults under keylime_dir', () => {
    const { cfg, warnings } = load('')
    expect(warnings).toEqual([])
    expect(cfg.mode).toBe('pull')
    expect(cfg.push).toEqual({
      verifierUrl: 'https://localhost:8881',
      verifierCaPath: '/kl/cv_ca/cacert.crt',
      intervalSeconds: 60,
      backoff: { initialDelayMs: 10000, maxRetries: 5, maxDelayMs: 300000 },
      registrarApiVersions: ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6'],
      serverIdentifier: 'ak',
      uefiEvidenceVersion: '2.1',
    })
    expect(cfg.registrarUrl).toBe('http://127.0.0.1:8890')
    expect(cfg.registrarCaPath).toBeUndefined()
  })

  test('a push-model agent.conf is read with no unknown-option warning', () => {
    const { cfg, warnings } = load(`mode = "push"
uuid = "hash_ek"
verifier_url = "https://verifier.example:8881/"
verifier_tls_ca_cert = "ca/verifier.pem"
attestation_interval_seconds = 10
exponential_backoff_initial_delay = 500
exponential_backoff_max_retries = 2
exponential_backoff_max_delay = 4000
registrar_ip = "::1"
registrar_tls_enabled = true
registrar_tls_port = 9891
registrar_tls_ca_cert = "/etc/keylime/reg-ca.crt"
registrar_api_versions = "2.5, 2.6"
certification_keys_server_identifier = "ak"
uefi_logs_evidence_version = "2.1"
tpm_hash_alg = "sha256"
tpm_signing_alg = "rsassa"`)
    expect(warnings).toEqual([])
    expect(cfg.mode).toBe('push')
    expect(cfg.push.verifierUrl).toBe('https://verifier.example:8881')
    expect(cfg.push.verifierCaPath).toBe('/kl/ca/verifier.pem')
    expect(cfg.push.intervalSeconds).toBe(10)
    expect(cfg.push.backoff).toEqual({ initialDelayMs: 500, maxRetries: 2, maxDelayMs: 4000 })
    expect(cfg.push.registrarApiVersions).toEqual(['2.5', '2.6'])
    expect(cfg.registrarUrl).toBe('https://[::1]:9891')
    expect(cfg.registrarCaPath).toBe('/etc/keylime/reg-ca.crt')
  })

  test('KEYLIME_AGENT_MODE and KEYLIME_AGENT_VERIFIER_URL override the file', () => {
    const { cfg } = load('mode = "pull"', {
      KEYLIME_AGENT_MODE: 'push',
      KEYLIME_AGENT_VERIFIER_URL: 'https://10.0.0.5:8881',
    })
    expect(cfg.mode).toBe('push')
    expect(cfg.push.verifierUrl).toBe('https://10.0.0.5:8881')
  })

  test('push mode ignores api_versions (API 3.0), with a warning, as rust-keylime does', () => {
    const { cfg, warnings } = load('mode = "push"\napi_versions = "3.0"')
    expect(cfg.mode).toBe('push')
    expect(warnings).toEqual(['api_versions = "3.0" is ignored in push mode (API 3.0)'])
    expect(() => load('api_versions = "3.0"')).toThrow(/option api_versions: unsupported/)
  })

  test('bad values name their option', () => {
    const bad: [string, RegExp][] = [
      ['mode = "both"', /option mode: "both" is not one of pull, push/],
      ['verifier_url = "http://v:8881"', /option verifier_url: must be an https:\/\/ URL/],
      ['verifier_url = "not a url"', /option verifier_url: .* is not a URL/],
      ['attestation_interval_seconds = 0', /option attestation_interval_seconds/],
      [
        'exponential_backoff_initial_delay = 5000\nexponential_backoff_max_delay = 10',
        /option exponential_backoff_max_delay/,
      ],
      ['registrar_api_versions = "9.9"', /option registrar_api_versions: unsupported version/],
      ['registrar_tls_port = 70000', /option registrar_tls_port/],
    ]
    for (const [body, message] of bad) {
      let err: unknown
      try {
        load(body)
      } catch (e) {
        err = e
      }
      expect(isAgentError(err, 'ERR_AGENT_CONFIG')).toBe(true)
      expect((err as Error).message).toMatch(message)
    }
  })
})
