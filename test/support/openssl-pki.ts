/**
 * A throwaway PKI made by the openssl CLI, independent of our own CA code, for TLS tests:
 * a CA with a server certificate (localhost, 127.0.0.1, ::1) and a client certificate, plus a rogue CA
 * with its own client certificate.
 * @module
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Whether the openssl CLI is available. */
export const hasOpenssl = Bun.which('openssl') !== null

/** PEM material of a test PKI. */
export interface TestPki {
  dir: string
  caCert: string
  serverKey: string
  serverCert: string
  clientKey: string
  clientCert: string
  rogueCaCert: string
  rogueClientKey: string
  rogueClientCert: string
  /** A self-signed server certificate without SANs, as agents generate (pinned by clients). */
  agentKey: string
  agentCert: string
  /** Another self-signed certificate (a wrong pin). */
  otherAgentCert: string
}

function run(args: string[], cwd: string): void {
  const p = Bun.spawnSync(['openssl', ...args], { cwd, stderr: 'pipe', stdout: 'pipe' })
  if (p.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${p.stderr.toString()}`)
}

function issue(dir: string, ca: string, name: string, ext: string): void {
  run(
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    ],
    dir,
  )
  writeFileSync(join(dir, `${name}.ext`), ext)
  run(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  )
}

/** A self-signed EC P-256 certificate; `extensions` are `-addext` values (none: a plain agent cert). */
function makeSelfSigned(dir: string, name: string, extensions: string[] = []): void {
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  const files = [
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
  ]
  run(['req', '-x509', ...key, ...files, ...extensions.flatMap((e) => ['-addext', e])], dir)
}

function makeCa(dir: string, name: string): void {
  makeSelfSigned(dir, name, [
    'basicConstraints=critical,CA:TRUE',
    'keyUsage=critical,keyCertSign,cRLSign',
  ])
}

/** Creates the PKI in a fresh temp dir. */
export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'kl-pki-'))
  makeCa(dir, 'ca')
  makeCa(dir, 'rogue-ca')
  issue(
    dir,
    'ca',
    'server',
    'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n',
  )
  issue(dir, 'ca', 'client', 'extendedKeyUsage=clientAuth\n')
  issue(dir, 'rogue-ca', 'rogue-client', 'extendedKeyUsage=clientAuth\n')
  makeSelfSigned(dir, 'agent')
  makeSelfSigned(dir, 'other-agent')
  const r = (f: string) => readFileSync(join(dir, f), 'utf8')
  return {
    dir,
    caCert: r('ca.crt'),
    serverKey: r('server.key'),
    serverCert: r('server.crt'),
    clientKey: r('client.key'),
    clientCert: r('client.crt'),
    rogueCaCert: r('rogue-ca.crt'),
    rogueClientKey: r('rogue-client.key'),
    rogueClientCert: r('rogue-client.crt'),
    agentKey: r('agent.key'),
    agentCert: r('agent.crt'),
    otherAgentCert: r('other-agent.crt'),
  }
}

/** Files of a {@link makeChainPki} PKI, in `dir`. */
export interface ChainPki {
  dir: string
  /** `cacerts.pem`: the root and the intermediate CA, concatenated (PEM). */
  caCerts: string
}

/**
 * keylime-tests' custom-certificate PKI (`openssl/certgen`): a root CA, an intermediate CA it
 * signs, and, signed by the intermediate, the server certificates `verifier` and `registrar`
 * (127.0.0.1) and the client certificates `verifier-client` and `tenant`; plus a `rogue-client`
 * from another CA. Files: `<name>-cert.pem`, `<name>-key.pem`, and `cacerts.pem` (root then
 * intermediate, one file).
 */
export function makeChainPki(): ChainPki {
  const dir = mkdtempSync(join(tmpdir(), 'kl-chain-pki-'))
  makeCa(dir, 'ca')
  makeCa(dir, 'rogue-ca')
  issue(
    dir,
    'ca',
    'intermediate-ca',
    'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n',
  )
  const server = 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'
  const client = 'extendedKeyUsage=clientAuth\n'
  for (const [name, ext] of [
    ['verifier', server],
    ['registrar', server],
    ['verifier-client', client],
    ['tenant', client],
  ] as const) {
    issue(dir, 'intermediate-ca', name, ext)
  }
  issue(dir, 'rogue-ca', 'rogue-client', client)
  const r = (f: string) => readFileSync(join(dir, f), 'utf8')
  for (const name of ['verifier', 'registrar', 'verifier-client', 'tenant', 'rogue-client']) {
    writeFileSync(join(dir, `${name}-cert.pem`), r(`${name}.crt`))
    writeFileSync(join(dir, `${name}-key.pem`), r(`${name}.key`))
  }
  const caCerts = r('ca.crt') + r('intermediate-ca.crt')
  writeFileSync(join(dir, 'cacerts.pem'), caCerts)
  return { dir, caCerts }
}
