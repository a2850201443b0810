/**
 * Where the TLS files of the verifier, registrar and tenant are, following upstream's rules
 * (`keylime/web_util.py` `get_tls_dir`, `get_tls_options`):
 *
 * - `tls_dir`: `generate` → `<KEYLIME_DIR>/cv_ca` (`reg_ca` for the registrar), `default` →
 *   `<KEYLIME_DIR>/cv_ca`, anything else → a path, relative to `KEYLIME_DIR` unless absolute.
 * - `server_key`, `server_cert`, `client_key`, `client_cert`: `default` → `server-private.pem`,
 *   `server-cert.crt`, `client-private.pem`, `client-cert.crt` in `tls_dir`; empty → not set;
 *   otherwise a path relative to `tls_dir`.
 * - `trusted_client_ca` / `trusted_server_ca`: `default` → `[<KEYLIME_DIR>/cv_ca/cacert.crt]`
 *   (the verifier's CA, whatever `tls_dir` is, as upstream), `all` → no peer verification, else a
 *   list of paths relative to `tls_dir`.
 * - `client_crl` (keylime-ts): CRLs of client certificates, see `client-crl.ts`.
 *
 * @module
 */
import { dirname, isAbsolute, join, resolve } from 'node:path'
import type { ClientCrlSources } from './client-crl.ts'
import { CaError } from './errors.ts'

/** Inputs of {@link resolveTlsFiles}: the raw option values of one component. */
export interface ResolveTlsFilesParams {
  /** `KEYLIME_DIR`. */
  keylimeDir: string
  /** `tls_dir`. */
  tlsDir: string
  /** Component name, used in error messages (`verifier`, `registrar`, `tenant`). */
  component?: string
  /** Directory used for `tls_dir = generate` (default `cv_ca`; the registrar uses `reg_ca`). */
  generateDirName?: string
  serverKey?: string
  serverKeyPassword?: string
  serverCert?: string
  clientKey?: string
  clientKeyPassword?: string
  clientCert?: string
  /** `trusted_client_ca` (servers) or `trusted_server_ca` (clients). */
  trustedCa?: string[] | string
  /** Name of the trusted-CA option for messages (default `trusted_client_ca`). */
  trustedCaOption?: string
  /** `client_crl` of a server (keylime-ts hardening); default `default`. */
  clientCrl?: string | string[]
}

/** Resolved absolute paths; the passwords are carried along for {@link loadTlsMaterial}. */
export interface TlsFiles {
  dir: string
  component?: string
  serverKey?: string
  serverKeyPassword?: string
  serverCert?: string
  clientKey?: string
  clientKeyPassword?: string
  clientCert?: string
  /** CA certificate files to trust, or `all` (no peer verification). */
  trustedCa: string[] | 'all'
  /** Option name that produced `trustedCa`, for messages. */
  trustedCaOption: string
  /** CRL files for client certificates (`client_crl`); empty: no CRL check. */
  clientCrl: ClientCrlSources['files']
}

/**
 * Parses a list option given as a string: a Python list literal (`['a.crt', "b.crt"]`) or a comma
 * list. Returns `default`/`all` unchanged.
 */
export function parseListOption(value: string): string[] | 'default' | 'all' {
  const v = value.trim()
  if (v === 'default' || v === 'all') return v
  const inner = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v
  return inner
    .split(',')
    .map((s) => s.trim().replace(/^(['"])(.*)\1$/, '$2'))
    .filter((s) => s.length > 0)
}

/**
 * Resolves `client_crl` (keylime-ts hardening, not in upstream) for a server:
 * - `default`: the `cacrl.der` (else `cacrl.pem`) beside each trusted client CA file — where
 *   `keylime_ca -c revoke` writes it; a CA with neither has no CRL;
 * - `none`: no CRL check;
 * - a list of files (PEM or DER; relative to `tls_dir`), each of which must exist.
 *
 * @returns the CRL file entries; empty when no CRL applies (also with `trusted_client_ca = all`).
 * @throws {CaError} `ERR_CA_INVALID_INPUT` for `all`, which means nothing for a CRL.
 */
export function resolveClientCrlFiles(
  option: string | string[],
  trustedCa: string[] | 'all',
  tlsDir: string,
): ClientCrlSources['files'] {
  let list = Array.isArray(option) ? option : parseListOption(option)
  if (Array.isArray(list) && list.length === 0) list = 'default'
  if (list === 'all') throw new CaError('ERR_CA_INVALID_INPUT', 'client_crl cannot be all')
  if (trustedCa === 'all' || (list.length === 1 && list[0] === 'none')) return []
  if (list === 'default') {
    return trustedCa.map((ca) => ({
      candidates: [join(dirname(ca), 'cacrl.der'), join(dirname(ca), 'cacrl.pem')],
      required: false,
    }))
  }
  return list.map((f) => ({ candidates: [resolve(tlsDir, f)], required: true }))
}

/**
 * Resolves the TLS file paths of a component. Does not touch the file system.
 *
 * @throws {CaError} `ERR_CA_INVALID_INPUT` when `tls_dir` is empty, or `tls_dir = generate` is
 *   combined with a non-`default` file option (upstream refuses that too).
 */
export function resolveTlsFiles(p: ResolveTlsFilesParams): TlsFiles {
  const where = p.component ? `[${p.component}] ` : ''
  const tlsDir = p.tlsDir.trim()
  if (!tlsDir) throw new CaError('ERR_CA_INVALID_INPUT', `${where}tls_dir is not set`)
  const cvCa = resolve(p.keylimeDir, 'cv_ca')
  let dir: string
  if (tlsDir === 'generate') {
    dir = resolve(p.keylimeDir, p.generateDirName ?? 'cv_ca')
    const given = {
      server_key: p.serverKey,
      server_cert: p.serverCert,
      client_key: p.clientKey,
      client_cert: p.clientCert,
    }
    const bad = Object.entries(given).filter(([, v]) => v !== undefined && v !== 'default')
    const ca = typeof p.trustedCa === 'string' ? p.trustedCa.trim() : p.trustedCa
    if (bad.length > 0 || (ca !== undefined && ca !== 'default')) {
      throw new CaError(
        'ERR_CA_INVALID_INPUT',
        `${where}tls_dir = generate requires server_key, server_cert, client_key, client_cert and the trusted CA options to be 'default'`,
      )
    }
  } else if (tlsDir === 'default') {
    dir = cvCa
  } else {
    dir = isAbsolute(tlsDir) ? resolve(tlsDir) : resolve(p.keylimeDir, tlsDir)
  }
  const file = (value: string | undefined, standard: string): string | undefined => {
    const v = value?.trim()
    if (v === undefined || v === '') return undefined
    return v === 'default' ? join(dir, standard) : resolve(dir, v)
  }
  let trusted =
    p.trustedCa === undefined
      ? 'default'
      : typeof p.trustedCa === 'string'
        ? parseListOption(p.trustedCa)
        : p.trustedCa
  if (
    Array.isArray(trusted) &&
    trusted.length === 1 &&
    (trusted[0] === 'default' || trusted[0] === 'all')
  ) {
    trusted = trusted[0] as 'default' | 'all'
  }
  const trustedCa: string[] | 'all' =
    trusted === 'all'
      ? 'all'
      : trusted === 'default'
        ? [join(cvCa, 'cacert.crt')]
        : trusted.map((c) => resolve(dir, c))
  return {
    dir,
    component: p.component,
    serverKey: file(p.serverKey, 'server-private.pem'),
    serverKeyPassword: p.serverKeyPassword || undefined,
    serverCert: file(p.serverCert, 'server-cert.crt'),
    clientKey: file(p.clientKey, 'client-private.pem'),
    clientKeyPassword: p.clientKeyPassword || undefined,
    clientCert: file(p.clientCert, 'client-cert.crt'),
    trustedCa,
    trustedCaOption: p.trustedCaOption ?? 'trusted_client_ca',
    clientCrl: resolveClientCrlFiles(p.clientCrl ?? 'default', trustedCa, dir),
  }
}
