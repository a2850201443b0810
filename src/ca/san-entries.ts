/**
 * Subject alternative names of the generated server certificate, as upstream gathers them
 * (`keylime/ca_impl_openssl.py` `get_san_entries`, `keylime/web_util.py` `_parse_san_config`):
 * `localhost`, `127.0.0.1`, `::1`, the host name, the bind address `ip` unless it is unspecified
 * (`0.0.0.0`/`::`), plus `cert_subject_alternative_names` (IPs as IP SANs, the rest as DNS names).
 *
 * Inside a container the host name is left out ({@link sanHostname}): it is the container's id,
 * which changes each time the container is re-created while the certificate stays in the volume.
 * There the names come from the configuration alone.
 *
 * @module
 */
import { existsSync } from 'node:fs'
import { isIP } from 'node:net'
import { hostname as osHostname } from 'node:os'

/** DNS names and IP addresses for a certificate, each sorted and without duplicates. */
export interface SanEntries {
  dns: string[]
  ips: string[]
}

/** Splits a comma list (`cert_subject_alternative_names`) into DNS names and IP addresses. */
export function parseSanConfig(value: string | undefined): SanEntries {
  const dns: string[] = []
  const ips: string[] = []
  for (const raw of (value ?? '').split(',')) {
    const entry = raw.trim()
    if (!entry) continue
    if (isIP(entry)) ips.push(entry)
    else dns.push(entry)
  }
  return { dns, ips }
}

function isUnspecified(ip: string): boolean {
  return ip === '0.0.0.0' || /^[0:]+$/.test(ip)
}

/** Files a container engine creates in every container: podman, then Docker. */
const CONTAINER_MARKERS = ['/run/.containerenv', '/.dockerenv']

/** Where {@link sanHostname} looks; replaceable in tests. */
export interface ContainerProbe {
  exists: (path: string) => boolean
  env: NodeJS.ProcessEnv
  hostname: () => string
}

const HOST_PROBE: ContainerProbe = { exists: existsSync, env: process.env, hostname: osHostname }

/**
 * The host name for the SANs: `os.hostname()` on a host, none inside a container, where it names
 * the container instance. A container is recognised by the `container` variable (systemd's
 * convention, set by podman, systemd-nspawn, LXC) or podman's `/run/.containerenv` or Docker's
 * `/.dockerenv` (`podman run --read-only` hides `/run/.containerenv` under a tmpfs).
 */
export function sanHostname(probe: ContainerProbe = HOST_PROBE): string | undefined {
  if (probe.env.container || CONTAINER_MARKERS.some(probe.exists)) return undefined
  return probe.hostname()
}

/** Inputs of {@link getSanEntries}. */
export interface SanEntriesParams {
  /** The configured bind address(es) (`ip` of each component serving the certificate). */
  bindAddress?: string | readonly string[]
  /** `cert_subject_alternative_names`, a comma list. */
  extra?: string
  /** The host name (defaults to {@link sanHostname}; `''` for none; injectable for tests). */
  hostname?: string
}

/**
 * Gathers the SANs of the generated server certificate.
 *
 * @example
 * ```ts
 * getSanEntries({ bindAddress: '0.0.0.0', extra: 'verifier.example, 10.0.0.5' })
 * // { dns: ['localhost', '<host>', 'verifier.example'], ips: ['10.0.0.5', '127.0.0.1', '::1'] }
 * ```
 */
export function getSanEntries(p: SanEntriesParams = {}): SanEntries {
  const dns = new Set<string>(['localhost'])
  const ips = new Set<string>(['127.0.0.1', '::1'])
  const host = p.hostname ?? sanHostname()
  if (host) dns.add(host)
  const binds = typeof p.bindAddress === 'string' ? [p.bindAddress] : (p.bindAddress ?? [])
  for (const raw of binds) {
    const bind = raw.trim()
    if (!bind) continue
    if (isIP(bind)) {
      if (!isUnspecified(bind)) ips.add(bind)
    } else {
      dns.add(bind)
    }
  }
  const extra = parseSanConfig(p.extra)
  for (const d of extra.dns) dns.add(d)
  for (const ip of extra.ips) ips.add(ip)
  return { dns: [...dns].sort(), ips: [...ips].sort() }
}
