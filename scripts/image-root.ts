/**
 * The Containerfile's one RUN step, run inside BASE in `/usr/src/keylime-ts` (the sources COPYed
 * there) by the context's own Bun (`node_modules/.bin/bun`, `node_modules` bind-mounted, never
 * copied into a layer), so BASE needs no shell, no package manager and no network:
 *
 * - `/usr/local/bin/keylime` and its command symlinks ({@link buildKeylime});
 * - the `keylime` user and group (uid/gid `KEYLIME_UID`, default 490) appended to BASE's
 *   `/etc/passwd` and `/etc/group` unless BASE has them;
 * - `/var/lib/keylime` owned by that user (a fresh named volume is initialised from it), with an
 *   empty `tpm_cert_store/` for the EK CA certificates the tenant checks against (`podman cp`
 *   them in), and an empty `/etc/keylime` for bind-mounted configuration;
 * - a last check that the binary runs in BASE (`keylime --version`).
 *
 * The build args reach it as environment variables (buildah sets them for RUN).
 *
 * @module
 */
import { appendFileSync, chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs'
import { buildKeylime } from './build.ts'

const uid = Number(process.env.KEYLIME_UID ?? '490')
if (!Number.isInteger(uid) || uid <= 0) throw new Error(`KEYLIME_UID must be a positive integer`)

/** Appends `line` to `file` unless an entry named `name` is there already. */
function ensureEntry(file: string, name: string, line: string): void {
  let text = ''
  try {
    text = readFileSync(file, 'utf8')
  } catch {
    // a base without the file gets one
  }
  if (text.split('\n').some((l) => l.startsWith(`${name}:`))) return
  appendFileSync(file, `${text === '' || text.endsWith('\n') ? '' : '\n'}${line}\n`)
}

const bin = buildKeylime('/usr/local/bin')
ensureEntry('/etc/group', 'keylime', `keylime:x:${uid}:`)
ensureEntry(
  '/etc/passwd',
  'keylime',
  `keylime:x:${uid}:${uid}:Keylime:/var/lib/keylime:/sbin/nologin`,
)
for (const dir of ['/var/lib/keylime', '/var/lib/keylime/tpm_cert_store']) {
  mkdirSync(dir, { recursive: true })
  chownSync(dir, uid, uid)
  chmodSync(dir, 0o755)
}
mkdirSync('/etc/keylime', { recursive: true })

const version = Bun.spawnSync([bin, '--version'], { stderr: 'inherit' })
if (version.exitCode !== 0) throw new Error(`${bin} --version exited ${version.exitCode} in BASE`)
process.stdout.write(version.stdout)
