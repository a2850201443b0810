/**
 * The tenant's trust decision before it hands U to an agent (keylime-api.md §4.3 step 5,
 * upstream `Tenant.do_quote`, `validate_tpm_quote`, `check_ek`):
 *
 * 1. `hash_alg`, `enc_alg`, `sign_alg` of the identity quote are in the tenant's accept lists.
 * 2. The NK the agent sent is one strict RSA `PUBLIC KEY` PEM block; the quote verifies with the
 *    registrar's AK (`aik_tpm`) over our nonce, and PCR16 binds that NK (`H(0 ‖ H(pubkey))`), so U
 *    can only be decrypted inside that TPM's agent.
 * 3. EK trust ({@link checkEkTrust}, also run alone for a push enrolment): with `require_ek_cert`, `ekcert` must certify `ek_tpm` and chain to
 *    `tpm_cert_store` (also `provider_keys.ekcert` for virtual TPMs); the registrar's own verdict is
 *    reported alongside. `ek_check_script` runs with upstream's environment (`AGENT_UUID`, `EK`,
 *    `EK_TPM`, `EK_CERT`, `PROVKEYS`, `TPM_CERT_STORE`); exit 0 accepts.
 *
 * Every failure is `ERR_TENANT_VERIFICATION` (exit 5) naming what failed and what to check.
 *
 * @module
 */
import { spawnSync } from 'node:child_process'
import { isAbsolute, join } from 'node:path'
import { isAccepted } from '../protocol/algorithms.ts'
import { decodeBase64 } from '../protocol/decode-base64.ts'
import { readRsaPublicKeyPem } from '../protocol/read-rsa-public-key-pem.ts'
import { loadCertStore, verifyEkCertChain } from '../tpm/cert-store.ts'
import { type HashAlg, isHashAlg } from '../tpm/constants.ts'
import { checkEkCertKey, parseEkCert } from '../tpm/ek-cert.ts'
import { checkNkBinding } from '../tpm/extend-pcr.ts'
import { parseTpm2bPublic, toKeyObject } from '../tpm/public-area.ts'
import { verifyQuote } from '../tpm/verify-quote.ts'
import { TenantError } from './errors.ts'
import type { RegistrarAgent } from './registrar-commands.ts'
import type { TenantContext } from './tenant-context.ts'

/** The identity quote answer (`GET /quotes/identity` results). */
export interface IdentityQuote {
  quote: string
  pubkey: string
  hash_alg: string
  enc_alg: string
  sign_alg: string
}

function fail(message: string, hint: string, cause?: unknown): never {
  throw new TenantError('ERR_TENANT_VERIFICATION', message, { hint, cause })
}

/** Checks the algorithms, the quote, PCR16 and the EK (see the module header). */
export function checkAgentIdentity(
  ctx: TenantContext,
  reg: RegistrarAgent,
  answer: IdentityQuote,
  nonce: string,
  now: Date = new Date(),
): void {
  const uuid = ctx.opts.agentUuid
  const c = ctx.cfg
  const who = `TPM Quote from agent ${uuid}`
  const algHint = (opt: string) => `add it to [tenant] ${opt} in tenant.conf if it is acceptable`
  if (!isAccepted(answer.hash_alg, c.accept_tpm_hash_algs) || !isHashAlg(answer.hash_alg))
    fail(
      `${who} is using an unaccepted hash algorithm: ${answer.hash_alg}`,
      algHint('accept_tpm_hash_algs'),
    )
  if (!isAccepted(answer.enc_alg, c.accept_tpm_encryption_algs))
    fail(
      `${who} is using an unaccepted encryption algorithm: ${answer.enc_alg}`,
      algHint('accept_tpm_encryption_algs'),
    )
  if (!isAccepted(answer.sign_alg, c.accept_tpm_signing_algs))
    fail(
      `${who} is using an unaccepted signing algorithm: ${answer.sign_alg}`,
      algHint('accept_tpm_signing_algs'),
    )

  const regHint =
    (reg.regcount ?? 0) > 1
      ? `agent ${uuid} had more than one EK/EK cert registered to it (regcount ${reg.regcount}): this might indicate a misconfigured system or a malicious host; run regdelete for this agent and restart it`
      : 'the agent must quote with the AK it registered; check that it was not re-provisioned (regdelete and restart it)'
  try {
    readRsaPublicKeyPem(answer.pubkey)
  } catch (e) {
    fail(
      `${who} carries an unusable NK: ${(e as Error).message}`,
      'the agent must send its NK as one RSA PUBLIC KEY PEM block and nothing else',
      e,
    )
  }
  try {
    const ak = parseTpm2bPublic(decodeBase64(reg.aik_tpm, { what: 'aik_tpm' }))
    const verified = verifyQuote({
      quote: answer.quote,
      akPublic: ak,
      nonce,
      hashAlg: answer.hash_alg as HashAlg,
    })
    checkNkBinding(verified.pcrs, answer.hash_alg as HashAlg, answer.pubkey)
  } catch (e) {
    fail(`${who} is invalid for nonce ${nonce}: ${(e as Error).message}`, regHint, e)
  }
  ctx.out.info(`Quote from agent ${uuid} validated`)
  checkEkTrust(ctx, reg, now)
}

/**
 * The EK checks of the module header (step 3), on the registrar's record alone: after the
 * identity quote in pull mode, and as the only identity check of a push enrolment (upstream
 * skips them there).
 *
 * @throws {TenantError} `ERR_TENANT_VERIFICATION` when the EK certificate or the script refuses.
 */
export function checkEkTrust(ctx: TenantContext, reg: RegistrarAgent, now = new Date()): void {
  const uuid = ctx.opts.agentUuid
  const c = ctx.cfg
  if (!c.require_ek_cert && c.ek_check_script === '') {
    ctx.out.warn(
      `DANGER: EK cert checking is disabled and no additional checks on EKs have been specified with ek_check_script option for agent ${uuid}. Keylime is not secure!!`,
    )
    return
  }
  if (c.require_ek_cert) {
    if (typeof reg.ek_cert_verdict === 'string') {
      ctx.out.info(
        `Registrar EK certificate verdict for agent ${uuid}: ${reg.ek_cert_verdict}${typeof reg.ek_cert_detail === 'string' ? ` (${reg.ek_cert_detail})` : ''}`,
      )
    }
    checkEkCert(ctx, reg.ekcert, reg.ek_tpm, 'ekcert', now)
    if (reg.provider_keys !== undefined) {
      const pk = reg.provider_keys as { ekcert?: string | null; ek_tpm?: string }
      checkEkCert(ctx, pk.ekcert, pk.ek_tpm, 'provider_keys.ekcert', now)
    }
  }
  if (c.ek_check_script !== '') runEkCheckScript(ctx, reg)
}

function checkEkCert(
  ctx: TenantContext,
  ekcert: string | null | undefined,
  ekTpm: string | undefined,
  field: string,
  now: Date,
): void {
  const uuid = ctx.opts.agentUuid
  const store = ctx.cfg.tpm_cert_store
  const disable = 'or set [tenant] require_ek_cert = False (not secure) and use ek_check_script'
  if (ekcert === null || ekcert === undefined || ekcert === '') {
    fail(
      `No EK cert provided for agent ${uuid} (${field}), require_ek_cert option in config set to True`,
      `the TPM has no EK certificate in NV; ${disable}`,
    )
  }
  if (ekcert === 'emulator') {
    ctx.out.info(`Not checking ekcert of TPM emulator for agent ${uuid}`)
    return
  }
  try {
    const cert = parseEkCert(ekcert, { malformedCertAction: 'warn' })
    if (ekTpm) checkEkCertKey(cert, parseTpm2bPublic(decodeBase64(ekTpm, { what: 'ek_tpm' })))
    verifyEkCertChain(cert, loadCertStore(store), { now, intermediates: cert.chain })
  } catch (e) {
    fail(
      `Invalid EK certificate for agent ${uuid} (${field}): ${(e as Error).message}`,
      `put the TPM vendor's EK CA (and intermediates) as *.pem into [tenant] tpm_cert_store (${store}), ${disable}`,
      e,
    )
  }
  ctx.out.info(`EK certificate of agent ${uuid} chains to ${store}`)
}

function runEkCheckScript(ctx: TenantContext, reg: RegistrarAgent): void {
  const uuid = ctx.opts.agentUuid
  let script = ctx.cfg.ek_check_script
  if (!isAbsolute(script)) script = join(ctx.keylimeDir, script)
  ctx.out.info(`Checking EK for agent ${uuid} with script ${script}`)
  let ekPem = ''
  try {
    ekPem = String(
      toKeyObject(parseTpm2bPublic(decodeBase64(reg.ek_tpm, { what: 'ek_tpm' }))).export({
        type: 'spki',
        format: 'pem',
      }),
    )
  } catch (e) {
    fail(
      `cannot decode ek_tpm of agent ${uuid}: ${(e as Error).message}`,
      'check the registration',
      e,
    )
  }
  const env: Record<string, string> = {
    ...(ctx.env as Record<string, string>),
    AGENT_UUID: uuid,
    EK: ekPem,
    EK_TPM: reg.ek_tpm,
    EK_CERT: reg.ekcert ?? '',
    PROVKEYS: JSON.stringify(reg.provider_keys ?? {}),
    TPM_CERT_STORE: ctx.cfg.tpm_cert_store,
  }
  const r = spawnSync(script, [], { env, cwd: ctx.keylimeDir, encoding: 'utf8', timeout: 60_000 })
  if (r.error) {
    fail(
      `ek_check_script ${script} could not run: ${r.error.message}`,
      'check [tenant] ek_check_script (path, executable bit, interpreter line)',
      r.error,
    )
  }
  if (r.stdout) ctx.out.info(`ek_check_script output: ${r.stdout.trim()}`)
  if (r.status !== 0) {
    fail(
      `ek_check_script ${script} rejected the EK of agent ${uuid} (exit ${r.status ?? r.signal})${r.stderr ? `: ${r.stderr.trim()}` : ''}`,
      'exit 0 accepts the EK; check the script and its inputs (AGENT_UUID, EK, EK_TPM, EK_CERT, PROVKEYS, TPM_CERT_STORE)',
    )
  }
}
