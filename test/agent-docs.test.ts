/**
 * docs/agent.md and the sample `packaging/agent.conf` it walks through stay in step: the sample
 * loads with rust-keylime's option names only (no unknown-option warning), the walkthrough runs
 * the agent with it, enrols the agent id the sample configures, points `TCTI` at the port swtpm
 * is started on and copies swtpm's local CA into the `tpm_cert_store` under `KEYLIME_DIR`; and
 * the page names no development-only path or milestone.
 *
 * @module
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { loadAgentConfig } from '../src/agent/config/load-agent-config.ts'

const ROOT = resolve(import.meta.dir, '..')
const SAMPLE = resolve(ROOT, 'packaging/agent.conf')
const DOC = readFileSync(resolve(ROOT, 'docs/agent.md'), 'utf8')

/** The shell blocks of the walkthrough section, joined. */
function walkthrough(): string {
  const start = DOC.indexOf('## Try it on a workstation (swtpm)')
  expect(start).toBeGreaterThanOrEqual(0)
  const end = DOC.indexOf('\n## ', start + 4)
  const section = DOC.slice(start, end < 0 ? undefined : end)
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).join('\n')
}

describe('packaging/agent.conf', () => {
  test('loads with upstream option names only, as the node defaults the docs describe', () => {
    const warnings: string[] = []
    const cfg = loadAgentConfig({ file: SAMPLE, env: {}, warn: (m) => warnings.push(m) })
    expect(warnings).toEqual([])
    expect(cfg.files).toEqual([SAMPLE])
    expect(cfg.raw).toMatchObject({
      ip: '127.0.0.1',
      port: 9002,
      registrar_ip: '127.0.0.1',
      registrar_port: 8890,
      enable_agent_mtls: true,
      trusted_client_ca: 'default',
      keylime_dir: '/var/lib/keylime',
      run_as: 'keylime:tss',
    })
    expect(cfg.paths.trustedClientCa).toEqual(['/var/lib/keylime/cv_ca/cacert.crt'])
  })

  test('KEYLIME_DIR moves every file of the agent, as the walkthrough relies on', () => {
    const cfg = loadAgentConfig({ file: SAMPLE, env: { KEYLIME_DIR: '/home/u/.keylime-agent' } })
    expect(cfg.keylimeDir).toBe('/home/u/.keylime-agent')
    expect(cfg.paths.trustedClientCa).toEqual(['/home/u/.keylime-agent/cv_ca/cacert.crt'])
    expect(cfg.paths.secureDir).toBe('/home/u/.keylime-agent/secure')
    expect(cfg.paths.agentData).toBe('/home/u/.keylime-agent/agent_data.json')
  })
})

describe('docs/agent.md', () => {
  const sh = walkthrough()

  test('the walkthrough runs the sample, enrols its agent id on the TPM swtpm serves', () => {
    expect(sh).toContain('dist/keylime-agent --config packaging/agent.conf')
    const uuid = loadAgentConfig({ file: SAMPLE, env: {} }).raw.uuid
    const ids = [...sh.matchAll(/ -u (\S+)/g)].map((m) => m[1])
    expect(ids.length).toBeGreaterThanOrEqual(4)
    expect(new Set(ids)).toEqual(new Set([uuid]))
    expect(sh).toMatch(/keylime_tenant -t 127\.0\.0\.1 -u \S+ -c add/)
    expect(sh).toContain('-c cvstatus')
    const port = /--server type=tcp,port=(\d+)/.exec(sh)?.[1]
    expect(port).toBeDefined()
    expect(sh).toContain(`TCTI=swtpm:host=127.0.0.1,port=${port} `)
    expect(sh).toContain(`tpm2_pcrread -T swtpm:host=127.0.0.1,port=${port} `)
  })

  test('the walkthrough makes EK certificates and trusts their CA in $KEYLIME_DIR/tpm_cert_store', () => {
    expect(sh).toMatch(/swtpm_setup --tpm2 .*--create-ek-cert --create-platform-cert/)
    expect(sh).toContain('KEYLIME_DIR=$PWD/.keylime npm start')
    expect(sh).toMatch(
      /swtpm-localca-rootca-cert\.pem[\s\\]+\S+issuercert\.pem \.keylime\/tpm_cert_store\//,
    )
  })

  test('names no development-only path or milestone', () => {
    for (const bad of [/\.\.\/shared\//, /\/work\//, /\bStep \d/]) {
      expect(DOC).not.toMatch(bad)
    }
  })
})
