/**
 * `keylime_tenant` argument parsing with upstream's flag names and defaults
 * (`keylime/tenant.py: main`, `keylime/cli/options.py: get_opts_error`).
 *
 * Upstream uses argparse, which accepts multi-letter single-dash flags (`-tp`, `-vp`, `-vi`, `-rp`,
 * `-nvc`); `node:util` `parseArgs` short options are one character, so those are rewritten to
 * their long forms through {@link SINGLE_DASH_ALIASES} before parsing. Deprecated spellings
 * (`--mb_refstate`, `--sign_verification_key`, `--supported-version`) map onto their successors.
 *
 * @module
 */
import { parseArgs } from 'node:util'
import { usageError } from './errors.ts'

/** Upstream's default agent UUID (`keylime/tenant.py`). */
export const DEFAULT_AGENT_UUID = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'

/** The commands of `-c/--command` (keylime-api.md §4.1). */
export const TENANT_COMMANDS = [
  'add',
  'update',
  'delete',
  'status',
  'cvstatus',
  'regstatus',
  'cvlist',
  'reglist',
  'bulkinfo',
  'reactivate',
  'regdelete',
  'addruntimepolicy',
  'showruntimepolicy',
  'updateruntimepolicy',
  'deleteruntimepolicy',
  'listruntimepolicy',
  'addmbpolicy',
  'showmbpolicy',
  'updatembpolicy',
  'deletembpolicy',
  'listmbpolicy',
  'addallowlist',
  'showallowlist',
  'deleteallowlist',
] as const

/** A tenant command. */
export type TenantCommand = (typeof TENANT_COMMANDS)[number]

/** Multi-letter single-dash flags (argparse style) → the long option `parseArgs` knows. */
export const SINGLE_DASH_ALIASES: Readonly<Record<string, string>> = {
  '-tp': '--targetport',
  '-vp': '--cvport',
  '-vi': '--cvid',
  '-rp': '--registrarport',
  '-nvc': '--no-verifier-check',
}

/** Deprecated long spellings → their current names. */
const LONG_ALIASES: Readonly<Record<string, string>> = {
  '--mb_refstate': '--mb-policy',
  '--sign_verification_key': '--signature-verification-key',
  '--supported-version': '--agent-api-version',
}

const OPTIONS = {
  command: { type: 'string', short: 'c' },
  'push-model': { type: 'boolean' },
  targethost: { type: 'string', short: 't' },
  targetport: { type: 'string' },
  registrarhost: { type: 'string', short: 'r' },
  registrarport: { type: 'string' },
  cv_targethost: { type: 'string' },
  cv: { type: 'string', short: 'v' },
  cvport: { type: 'string' },
  cvid: { type: 'string' },
  'no-verifier-check': { type: 'boolean' },
  uuid: { type: 'string', short: 'u' },
  file: { type: 'string', short: 'f' },
  cert: { type: 'string' },
  key: { type: 'string', short: 'k' },
  payload: { type: 'string', short: 'p' },
  include: { type: 'string' },
  allowlist: { type: 'string' },
  'runtime-policy': { type: 'string' },
  'signature-verification-key': { type: 'string', multiple: true },
  'signature-verification-key-sig': { type: 'string', multiple: true },
  'signature-verification-key-sig-key': { type: 'string', multiple: true },
  'signature-verification-key-url': { type: 'string', multiple: true },
  'signature-verification-key-sig-url': { type: 'string', multiple: true },
  'signature-verification-key-sig-url-key': { type: 'string', multiple: true },
  'allowlist-url': { type: 'string' },
  exclude: { type: 'string' },
  'runtime-policy-checksum': { type: 'string' },
  'runtime-policy-sig-key': { type: 'string' },
  'runtime-policy-url': { type: 'string' },
  tpm_policy: { type: 'string' },
  verify: { type: 'boolean' },
  'allowlist-name': { type: 'string' },
  'runtime-policy-name': { type: 'string' },
  'mb-policy': { type: 'string' },
  'mb-policy-name': { type: 'string' },
  'agent-api-version': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** Parsed and checked options (upstream `args` attribute names where they differ). */
export interface TenantOptions {
  command: TenantCommand
  /** True when `-u` was not given and the default UUID is used. */
  defaultUuid: boolean
  agentUuid: string
  pushModel: boolean
  agentIp?: string
  agentPort?: number
  cvAgentIp?: string
  verifierIp?: string
  verifierPort?: number
  verifierId?: string
  /** False with `-nvc/--no-verifier-check`. */
  verifierCheck: boolean
  registrarIp?: string
  registrarPort?: number
  file?: string
  caDir?: string
  keyFile?: string
  payloadFile?: string
  include?: string
  allowlist?: string
  allowlistUrl?: string
  exclude?: string
  runtimePolicy?: string
  runtimePolicyUrl?: string
  runtimePolicyChecksum?: string
  runtimePolicySigKey?: string
  runtimePolicyName?: string
  allowlistName?: string
  imaSignVerificationKeys: string[]
  /** GPG signature options of the deprecated verification keys (refused: need gpg). */
  imaSignVerificationKeySigs: string[]
  imaSignVerificationKeyUrls: string[]
  tpmPolicy?: string
  verify: boolean
  mbPolicy?: string
  mbPolicyName?: string
  agentApiVersion?: string
  json: boolean
  help: boolean
  /** Deprecation warnings produced while parsing (printed on stderr). */
  warnings: string[]
}

/** Agent ids upstream accepts (`keylime/common/validators.py: valid_agent_id`). */
const AGENT_ID_RE = /^[\w.-]+$/

function rewrite(args: readonly string[], warnings: string[]): string[] {
  const out: string[] = []
  for (const a of args) {
    const eq = a.indexOf('=')
    const head = eq > 0 ? a.slice(0, eq) : a
    const tail = eq > 0 ? a.slice(eq) : ''
    const single = SINGLE_DASH_ALIASES[head]
    const long = LONG_ALIASES[head]
    if (single !== undefined) out.push(single + tail)
    else if (long !== undefined) {
      if (head === '--supported-version')
        warnings.push('--supported-version is deprecated. Use --agent-api-version instead.')
      out.push(long + tail)
    } else out.push(a)
  }
  return out
}

function port(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,5}$/.test(value) || Number(value) < 1 || Number(value) > 65535)
    throw usageError(`${flag} must be a TCP port number (1-65535), got "${value}"`)
  return Number(value)
}

/**
 * Parses the tenant's arguments (without the program name).
 *
 * @throws {TenantError} `ERR_TENANT_USAGE` for unknown options, missing values, an unknown
 *   command, an invalid UUID or port, and the option conflicts upstream's `get_opts_error` and
 *   `init_add` refuse.
 */
export function parseTenantArgs(argv: readonly string[]): TenantOptions {
  const warnings: string[] = []
  let values: Record<string, string | boolean | string[] | undefined>
  try {
    const parsed = parseArgs({
      args: rewrite(argv, warnings),
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    })
    values = parsed.values as typeof values
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    throw usageError(msg.split('\n')[0] ?? msg, 'run keylime_tenant --help for the options')
  }
  const str = (k: string) => values[k] as string | undefined
  const list = (k: string) => (values[k] as string[] | undefined) ?? []
  const command = (str('command') ?? 'add') as TenantCommand
  const help = values.help === true
  if (!help && !(TENANT_COMMANDS as readonly string[]).includes(command)) {
    throw usageError(
      `Invalid command specified: ${command}`,
      `valid commands are ${TENANT_COMMANDS.join(',')}`,
    )
  }
  const uuid = str('uuid')
  if (uuid !== undefined && !AGENT_ID_RE.test(uuid)) {
    throw usageError(
      'The agent ID set via agent uuid parameter use invalid characters',
      'an agent id may contain letters, digits, "_", "." and "-" only',
    )
  }
  const o: TenantOptions = {
    command,
    defaultUuid: uuid === undefined,
    agentUuid: uuid ?? DEFAULT_AGENT_UUID,
    pushModel: values['push-model'] === true,
    agentIp: str('targethost'),
    agentPort: port(str('targetport'), '-tp/--targetport'),
    cvAgentIp: str('cv_targethost'),
    verifierIp: str('cv'),
    verifierPort: port(str('cvport'), '-vp/--cvport'),
    verifierId: str('cvid'),
    verifierCheck: values['no-verifier-check'] !== true,
    registrarIp: str('registrarhost'),
    registrarPort: port(str('registrarport'), '-rp/--registrarport'),
    file: str('file'),
    caDir: str('cert'),
    keyFile: str('key'),
    payloadFile: str('payload'),
    include: str('include'),
    allowlist: str('allowlist'),
    allowlistUrl: str('allowlist-url'),
    exclude: str('exclude'),
    runtimePolicy: str('runtime-policy'),
    runtimePolicyUrl: str('runtime-policy-url'),
    runtimePolicyChecksum: str('runtime-policy-checksum'),
    runtimePolicySigKey: str('runtime-policy-sig-key'),
    runtimePolicyName: str('runtime-policy-name'),
    allowlistName: str('allowlist-name'),
    imaSignVerificationKeys: list('signature-verification-key'),
    imaSignVerificationKeySigs: [
      ...list('signature-verification-key-sig'),
      ...list('signature-verification-key-sig-key'),
      ...list('signature-verification-key-sig-url'),
      ...list('signature-verification-key-sig-url-key'),
    ],
    imaSignVerificationKeyUrls: list('signature-verification-key-url'),
    tpmPolicy: str('tpm_policy'),
    verify: values.verify === true,
    mbPolicy: str('mb-policy'),
    mbPolicyName: str('mb-policy-name'),
    agentApiVersion: str('agent-api-version'),
    json: values.json === true,
    help,
    warnings,
  }
  if (!help) checkConflicts(o)
  return o
}

/** Upstream `get_opts_error` plus the payload-source checks of `init_add`. */
function checkConflicts(o: TenantOptions): void {
  const c = o.command
  if (
    (c === 'addallowlist' || c === 'addruntimepolicy') &&
    !(o.allowlist || o.allowlistUrl || o.runtimePolicy || o.runtimePolicyUrl)
  )
    throw usageError('--allowlist or --runtime-policy is required to add a runtime policy')
  if (o.exclude && !(o.allowlist || o.allowlistUrl))
    throw usageError('--exclude cannot be used without an --allowlist')
  if (o.allowlist && o.allowlistUrl)
    throw usageError('--allowlist and --allowlist-url cannot be specified at the same time')
  if (o.runtimePolicy && o.runtimePolicyUrl)
    throw usageError(
      '--runtime-policy and --runtime-policy-url cannot be specified at the same time',
    )
  if (o.runtimePolicyUrl && !o.runtimePolicyChecksum)
    throw usageError('--runtime-policy-url must have --runtime-policy-checksum to verify integrity')
  if (o.runtimePolicyChecksum && !(o.runtimePolicyUrl || o.runtimePolicy))
    throw usageError(
      '--runtime-policy-checksum must have either --runtime-policy or --runtime-policy-url',
    )
  if (o.runtimePolicyChecksum && !/^[0-9a-fA-F]{64}$/.test(o.runtimePolicyChecksum))
    throw usageError('--runtime-policy-checksum must be a SHA-256 digest (64 hex characters)')
  if ((o.allowlist || o.allowlistUrl) && (o.runtimePolicy || o.runtimePolicyUrl))
    throw usageError('--allowlist cannot be combined with --runtime-policy; use one of them')
  if (c === 'add' || c === 'update') {
    const sources = [o.file, o.keyFile, o.caDir].filter((s) => s !== undefined).length
    if (sources > 1)
      throw usageError(
        'You must specify one of -k, -f, or --cert to specify the key/contents to be securely delivered to the agent',
      )
    if (o.payloadFile !== undefined && o.keyFile === undefined)
      throw usageError('-p/--payload needs the keys of that payload: add -k/--key')
    if (o.include !== undefined && o.caDir === undefined)
      throw usageError('--include option is only valid when used with --cert')
    if (o.verify && sources === 0)
      throw usageError(
        '--verify only works when a payload is provided to the agent via -k, -f, or --cert',
      )
    if (o.verify && o.pushModel)
      throw usageError('--verify needs agent contact and cannot be used with --push-model')
    if (o.pushModel && sources > 0)
      throw usageError(
        'a payload (-k, -f or --cert) is delivered to the agent and cannot be used with --push-model',
        'push agents are never contacted by the tenant: enrol without a payload',
      )
  }
  if (o.imaSignVerificationKeySigs.length > 0 || o.imaSignVerificationKeyUrls.length > 0)
    throw usageError(
      'GPG-signed and remote IMA verification keys (--signature-verification-key-sig*, --signature-verification-key-url) are not supported',
      'put the keys into the runtime policy ("verification-keys") or pass them with --signature-verification-key',
    )
  if (o.agentApiVersion !== undefined && !/^\d+\.\d+$/.test(o.agentApiVersion))
    throw usageError(`--agent-api-version must look like 2.1, got "${o.agentApiVersion}"`)
}

/** The `--help` text. */
export const TENANT_USAGE = `usage: keylime_tenant [-h] [-c COMMAND] [-u UUID] [options]

Keylime tenant (keylime-ts): enrol agents with the verifier, deliver encrypted payloads, manage
runtime and measured-boot policies.

commands (-c/--command, default add):
  add, update, delete, status, cvstatus, regstatus, cvlist, reglist, bulkinfo, reactivate,
  regdelete, addruntimepolicy, showruntimepolicy, updateruntimepolicy, deleteruntimepolicy,
  listruntimepolicy, addmbpolicy, showmbpolicy, updatembpolicy, deletembpolicy, listmbpolicy
  (deprecated: addallowlist, showallowlist, deleteallowlist)

options:
  -u, --uuid UUID             agent id (default ${DEFAULT_AGENT_UUID})
  -t, --targethost IP         agent address (default: from the registrar)
  -tp, --targetport PORT      agent port (default: from the registrar)
  --cv_targethost IP          agent address as the verifier sees it
  -v, --cv IP                 verifier address      -vp, --cvport PORT   verifier port
  -vi, --cvid ID              verifier id (cvlist, bulkinfo filter)
  -nvc, --no-verifier-check   delete/reactivate/update: skip the owning-verifier lookup
  -r, --registrarhost IP      registrar address     -rp, --registrarport PORT
  --push-model                push model: add/update without agent contact (no payload,
                              no --verify); cvstatus/status without operational_state
  -f, --file FILE             deliver FILE encrypted with a fresh key
  -k, --key FILE              keys from keylime_userdata_encrypt (content_keys.txt)
  -p, --payload FILE          encrypted payload for -k (content_payload.txt)
  --cert DIR|default          deliver a certificate package from the keylime CA
  --include DIR|FILE          extra files for the --cert zip (a .zip file's entries are merged)
  --verify                    wait for and check the agent's key derivation
  --tpm_policy JSON           static PCR policy, e.g. '{"15":["0000…"]}' (PCR 10, 16 refused)
  --runtime-policy FILE       runtime (IMA) policy; --runtime-policy-name NAME
  --runtime-policy-url URL    with --runtime-policy-checksum SHA256
  --runtime-policy-sig-key F  key to verify a DSSE-signed runtime policy
  --mb-policy FILE|default    measured-boot policy (default: tenant.conf mb_refstate)
  --mb-policy-name NAME       named measured-boot policy
  --agent-api-version X.Y     agent API version (default: negotiated)
  deprecated: --allowlist, --allowlist-url, --exclude, --allowlist-name, --mb_refstate,
              --signature-verification-key, --supported-version
  --json                      print exactly one JSON document on stdout (errors too)
  -h, --help                  show this help

exit codes: 0 ok, 1 rejected by a server, 2 usage, 3 unreachable, 4 not found,
            5 verification failed, 6 invalid input, 7 conflict, 8 local configuration
`
