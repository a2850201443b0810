/**
 * The `keylime_ca` command (upstream `keylime/ca_util.py` `main`):
 *
 * ```
 * keylime_ca -c init|create|pkg|revoke|import-priv [-n NAME] [-d DIR] [-i] [-f FILE] [-s SERIAL]
 * ```
 *
 * - `init` creates a CA in DIR (default `$KEYLIME_DIR/ca/`); it refuses to replace an existing CA
 *   (its key, serials and every certificate it issued) unless `--force` is given (upstream
 *   replaces it silently).
 * - `create -n NAME` issues `NAME-cert.crt`, `NAME-private.pem`, `NAME-public.pem`.
 * - `pkg -n NAME [-i]` writes `NAME-pkg.zip`; the key inside is protected unless `-i`.
 * - `revoke -n NAME` (or `-s SERIAL`) revokes and rewrites `cacrl.der` / `cacrl.pem`.
 * - `import-priv -f FILE -s SERIAL` replaces the CA key; SERIAL is the last serial used.
 *
 * The keystore password is ca.conf `password`; `default` means "prompt" when stdin is a terminal
 * (as upstream's CLI does) and the literal `default` otherwise, which is what services use.
 * Exit codes: 0 success, 1 failure, 2 usage error. Errors print one line, never a stack trace.
 *
 * @module
 */
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { isKeylimeError } from '../errors.ts'
import { ensureCaDir, readTextBounded } from './ca-files.ts'
import { type CaSettings, resolveCaSettings } from './ca-settings.ts'
import { CertAuthority, assertCertName } from './cert-authority.ts'
import { CaError } from './errors.ts'
import { withDirLock } from './with-dir-lock.ts'

/** Context of {@link runCaCli}. */
export interface CaCliContext {
  /** The `[ca]` settings (`cfg.ca`). */
  settings: CaSettings
  /** `KEYLIME_DIR`; the default CA directory is `<keylimeDir>/ca`. */
  keylimeDir: string
  stdout?: (s: string) => void
  stderr?: (s: string) => void
  /** Asks for the keystore password when `password = default` (defaults to a TTY prompt). */
  readPassword?: () => Promise<string>
  /** Clock (tests). */
  now?: () => Date
}

/** Usage text. */
export const CA_CLI_USAGE = `usage: keylime_ca [-h] -c COMMAND [-n NAME] [-d DIR] [-i] [-f FILE] [-s SERIAL] [--force]

options:
  -h, --help            show this help message and exit
  -c, --command COMMAND valid commands are init,create,pkg,revoke,import-priv
  -n, --name NAME       the common name of the certificate to create
  -d, --dir DIR         use a custom directory to store certificates and keys
  -i, --insecure        create cert packages with unprotected private keys and write them to disk.
                        USE WITH CAUTION!
  -f, --file FILE       file path of the private key of the CA cert (default ca-private.pem)
  -s, --serial SERIAL   last serial number the CA has used (import-priv), or serial to revoke
  --force               init: replace the CA already in DIR (its key and every certificate it
                        issued stop being trusted)
`

const COMMANDS = new Set(['init', 'create', 'pkg', 'revoke', 'import-priv'])

class UsageError extends Error {}

/** Reads a line from a terminal without echoing it. */
async function promptHidden(prompt: string, write: (s: string) => void): Promise<string> {
  const stdin = process.stdin
  write(prompt)
  stdin.setRawMode?.(true)
  stdin.resume()
  try {
    return await new Promise<string>((resolvePw, reject) => {
      let buf = ''
      const onData = (chunk: Buffer) => {
        for (const ch of chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData)
            write('\n')
            resolvePw(buf)
            return
          }
          if (ch === '\u0003') {
            stdin.off('data', onData)
            reject(new CaError('ERR_CA_INVALID_INPUT', 'interrupted'))
            return
          }
          if (ch === '\u007f' || ch === '\b') buf = buf.slice(0, -1)
          else if (buf.length < 1024) buf += ch
        }
      }
      stdin.on('data', onData)
    })
  } finally {
    stdin.setRawMode?.(false)
    stdin.pause()
  }
}

async function getPassword(
  ctx: CaCliContext,
  settings: CaSettings,
  err: (s: string) => void,
): Promise<string> {
  let pw = settings.password
  if (pw === 'default') {
    if (ctx.readPassword) pw = await ctx.readPassword()
    else if (process.stdin.isTTY)
      pw = await promptHidden('Please enter the password to decrypt your keystore: ', err)
    else err("Warning: using the 'default' password option from the CA configuration file\n")
  }
  if (!pw) throw new CaError('ERR_CA_INVALID_INPUT', 'You must specify a password!')
  return pw
}

/**
 * Runs `keylime_ca` with `argv` (arguments only, without the program name).
 *
 * @returns the exit code: 0 success, 1 failure, 2 usage error.
 *
 * @example
 * ```ts
 * const code = await runCaCli(['-c', 'create', '-n', 'server'], { settings: cfg.ca, keylimeDir })
 * ```
 */
export async function runCaCli(argv: string[], ctx: CaCliContext): Promise<number> {
  const out = ctx.stdout ?? ((s: string) => process.stdout.write(s))
  const err = ctx.stderr ?? ((s: string) => process.stderr.write(s))
  let values: {
    command?: string
    name?: string
    dir?: string
    insecure?: boolean
    file?: string
    serial?: string
    force?: boolean
    help?: boolean
  }
  try {
    values = parseArgs({
      args: argv,
      allowPositionals: false,
      strict: true,
      options: {
        command: { type: 'string', short: 'c' },
        name: { type: 'string', short: 'n' },
        dir: { type: 'string', short: 'd' },
        insecure: { type: 'boolean', short: 'i' },
        file: { type: 'string', short: 'f' },
        serial: { type: 'string', short: 's' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values
  } catch (e) {
    err(`keylime_ca: error: ${(e as Error).message}\n${CA_CLI_USAGE}`)
    return 2
  }
  if (values.help) {
    out(CA_CLI_USAGE)
    return 0
  }
  try {
    const command = values.command
    if (!command) throw new UsageError('the following arguments are required: -c/--command')
    if (!COMMANDS.has(command)) throw new UsageError(`Invalid command: ${command}`)
    const needName =
      command === 'create' ||
      command === 'pkg' ||
      (command === 'revoke' && values.serial === undefined)
    if (needName && values.name === undefined) {
      throw new UsageError('you must pass in a name for the certificate using -n (or --name)')
    }
    if (command === 'import-priv' && values.serial === undefined) {
      throw new UsageError(
        'you must pass in the last serial number the CA has used using -s (or --serial)',
      )
    }
    if (values.name !== undefined) {
      try {
        assertCertName(values.name)
      } catch (e) {
        throw new UsageError((e as Error).message)
      }
    }
    if (
      command === 'revoke' &&
      values.serial !== undefined &&
      !/^[1-9][0-9]{0,40}$/.test(values.serial)
    ) {
      throw new UsageError('serial must be a positive decimal number')
    }
    const settings = resolveCaSettings(ctx.settings)
    const dir = resolve(values.dir ?? join(ctx.keylimeDir, 'ca'))
    const password = await getPassword(ctx, settings, err)
    const now = ctx.now?.() ?? new Date()
    await mkdir(dir, { recursive: true, mode: 0o700 })
    await ensureCaDir(dir)
    await withDirLock(dir, async () => {
      if (command === 'init') {
        if (!values.force && (await CertAuthority.hasAnyTrace(dir))) {
          throw new CaError(
            'ERR_CA_EXISTS',
            `a CA already exists in ${dir}; init would replace its key and every certificate it issued (pass --force to do so)`,
          )
        }
        await CertAuthority.init(dir, settings, password, now)
        out(`CA certificate created successfully in ${dir}\n`)
        return
      }
      const ca = await CertAuthority.open(dir, settings, password)
      const name = values.name ?? ''
      if (command === 'create') {
        const issued = await ca.createCert(name, { now })
        out(
          `Created certificate for name ${name} (serial ${issued.serial}) successfully in ${dir}\n`,
        )
      } else if (command === 'pkg') {
        const pkg = await ca.certPackage(name, { insecure: values.insecure ?? false })
        if (values.insecure)
          err('Warning: unprotected private keys in cert package being written to disk\n')
        out(`Creating cert package for ${name} in ${pkg.path}\n`)
      } else if (command === 'revoke') {
        if (values.name !== undefined && values.serial !== undefined) {
          throw new UsageError('You may not specify a cert and a serial at the same time')
        }
        await ca.revoke(values.name !== undefined ? { name } : { serial: values.serial }, now)
        out(
          `Revoked ${values.name !== undefined ? `certificate ${name}` : `serial ${values.serial}`}; CRL updated in ${dir}\n`,
        )
      } else {
        const serial = values.serial ?? ''
        if (!/^(0|[1-9][0-9]{0,14})$/.test(serial))
          throw new UsageError('serial must be a non-negative decimal number')
        const file = resolve(values.file ?? 'ca-private.pem')
        await ca.importPrivateKey(await readTextBounded(file, 'check -f/--file'), Number(serial))
        out(`Imported CA private key from ${file}; last serial ${serial}\n`)
      }
    })
    return 0
  } catch (e) {
    if (e instanceof UsageError) {
      err(`keylime_ca: error: ${e.message}\n${CA_CLI_USAGE}`)
      return 2
    }
    if (isKeylimeError(e)) {
      err(`keylime_ca: error: ${e.message}\n`)
      return 1
    }
    err(`keylime_ca: error: ${(e as Error)?.message ?? String(e)}\n`)
    return 1
  }
}
