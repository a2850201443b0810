/**
 * The agent's half of registration done by tpm2-tools on a manufactured swtpm, independent of our
 * own TPM code: the persistent RSA EK (0x81010001) and its NV certificate, AKs created under it,
 * TPM2_ActivateCredential on the registrar's blob (EK policy satisfied by PolicySecret on the
 * endorsement hierarchy) and the auth_tag computed with `openssl dgst -sha384 -hmac`.
 *
 * @module
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { registrationBody } from './software-agent.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './swtpm.ts'

/** Tools a {@link Tpm2ToolsAgent} needs besides swtpm. */
const TOOLS = [
  'openssl',
  'tpm2_createak',
  'tpm2_readpublic',
  'tpm2_nvread',
  'tpm2_activatecredential',
  'tpm2_startauthsession',
  'tpm2_policysecret',
  'tpm2_flushcontext',
]

/** The swtpm and tpm2-tools programs missing on this machine. */
export function missingTpm2ToolsAgentTools(): string[] {
  return missingSwtpmTools(TOOLS)
}

const EK_HANDLE = '0x81010001'
const EK_CERT_NV = '0x01c00002'

/** PEM text of one DER certificate. */
export function certPem(der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? []
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`
}

/** One TPM (a manufactured swtpm) driven by tpm2-tools, as an agent uses it. */
export class Tpm2ToolsAgent {
  readonly tpm: Swtpm
  readonly work: string
  /** The EK's TPM2B_PUBLIC. */
  readonly ekPub: Buffer
  /** The EK certificate (DER) from NV. */
  readonly ekCertDer: Buffer

  private constructor(tpm: Swtpm, work: string) {
    this.tpm = tpm
    this.work = work
    this.must(['tpm2_readpublic', '-c', EK_HANDLE, '-o', 'ek.pub'])
    this.must(['tpm2_nvread', EK_CERT_NV, '-C', 'o', '-o', 'ek.der'])
    this.ekPub = readFileSync(join(work, 'ek.pub'))
    this.ekCertDer = readFileSync(join(work, 'ek.der'))
  }

  /** Manufactures a swtpm (SHA-256 bank) and opens it. */
  static async start(): Promise<Tpm2ToolsAgent> {
    const tpm = await startSwtpm({ banks: 'sha256' })
    return new Tpm2ToolsAgent(tpm, mkdtempSync(join(tmpdir(), 'kl-tpm2-agent-')))
  }

  /** The EK certificate as rust-keylime sends it: PEM, the NV chain (intermediate) appended. */
  get ekCertChainPem(): string {
    return certPem(this.ekCertDer) + this.tpm.intermediatePem
  }

  /** Runs a tpm2-tools or openssl command against this TPM. */
  run(args: string[], stdin?: string): { ok: boolean; stdout: string; stderr: string } {
    const p = Bun.spawnSync(args, {
      cwd: this.work,
      env: { ...process.env, TPM2TOOLS_TCTI: this.tpm.tcti },
      stdin: stdin === undefined ? 'ignore' : Buffer.from(stdin),
      stdout: 'pipe',
      stderr: 'pipe',
    })
    return { ok: p.exitCode === 0, stdout: p.stdout.toString(), stderr: p.stderr.toString() }
  }

  /** {@link run}, throwing with stderr on failure. */
  must(args: string[], stdin?: string): string {
    const r = this.run(args, stdin)
    if (!r.ok) throw new Error(`${args.join(' ')} failed: ${r.stderr}`)
    return r.stdout
  }

  /** Flushes transient objects and sessions: swtpm has no resource manager and 3 object slots. */
  flushAll(): void {
    this.run(['tpm2_flushcontext', '-t'])
    this.run(['tpm2_flushcontext', '-s'])
  }

  /**
   * Creates an AK under the EK (RSA-2048/RSASSA or ECC P-256/ECDSA, SHA-256); returns its
   * TPM2B_PUBLIC (context kept as `ak-<tag>.ctx`).
   */
  createAk(tag: string, alg: 'rsa' | 'ecc' = 'rsa'): Buffer {
    this.flushAll()
    this.must([
      'tpm2_createak',
      '-C',
      EK_HANDLE,
      '-c',
      `ak-${tag}.ctx`,
      '-G',
      alg,
      '-g',
      'sha256',
      '-s',
      alg === 'rsa' ? 'rsassa' : 'ecdsa',
      '-u',
      `ak-${tag}.pub`,
      '-n',
      `ak-${tag}.name`,
    ])
    this.flushAll()
    return readFileSync(join(this.work, `ak-${tag}.pub`))
  }

  /**
   * TPM2_ActivateCredential on `blobB64` with the AK `ak-<tag>` and this TPM's EK; the credential,
   * or undefined when the TPM refuses (a blob for another EK or another AK name).
   */
  activateCredential(tag: string, blobB64: string): Buffer | undefined {
    writeFileSync(join(this.work, 'cred.blob'), Buffer.from(blobB64, 'base64'))
    rmSync(join(this.work, 'cred.out'), { force: true })
    this.flushAll()
    this.must(['tpm2_startauthsession', '--policy-session', '-S', 'session.ctx'])
    this.must(['tpm2_policysecret', '-S', 'session.ctx', '-c', 'e'])
    const r = this.run([
      'tpm2_activatecredential',
      '-c',
      `ak-${tag}.ctx`,
      '-C',
      EK_HANDLE,
      '-i',
      'cred.blob',
      '-o',
      'cred.out',
      '-P',
      'session:session.ctx',
    ])
    this.flushAll()
    return r.ok ? readFileSync(join(this.work, 'cred.out')) : undefined
  }

  /** The agent's auth_tag for `agentId` from a blob, computed as rust-keylime does. */
  authTag(tag: string, agentId: string, blobB64: string): string {
    const cred = this.activateCredential(tag, blobB64)
    if (cred === undefined) throw new Error('tpm2_activatecredential refused the blob')
    const out = this.must(['openssl', 'dgst', '-sha384', '-hmac', cred.toString('base64')], agentId)
    return out.trim().split(/\s+/).pop()!
  }

  /** A registration body as rust-keylime sends it, for the AK `ak`, with the EK certificate. */
  body(ak: Buffer, extra: Record<string, unknown> = {}): Record<string, unknown> {
    return registrationBody(ak, this.ekPub, { ekcert: this.ekCertChainPem, ...extra })
  }

  /** Stops swtpm and removes its state and the work directory. */
  async remove(): Promise<void> {
    await this.tpm.remove()
    rmSync(this.work, { recursive: true, force: true })
  }
}
