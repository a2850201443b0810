/**
 * The CA keystore `private.yml`, in upstream Keylime's format (`keylime/ca_util.py`
 * `write_private`/`read_private`, `keylime/crypto.py` `kdf`/`encrypt`/`decrypt`):
 *
 * ```yaml
 * priv: !!binary |          # bytes of base64(iv16 ‖ AES-256-GCM ciphertext ‖ tag16)
 *   …
 * salt: <base64 of 32 random bytes, used as UTF-8 text>
 * ```
 *
 * The key is PBKDF2-HMAC-SHA256(password, salt, 100 000 iterations, 32 bytes). The plaintext is
 * YAML holding `ca` (the CA private key, PKCS#8 PEM as `!!binary`), `lastserial`, `revoked_keys`
 * (serials as decimal strings) and one `!!binary` PEM per issued certificate name. keylime-ts adds
 * `revocation_dates` (serial → ISO date) so CRL entries keep their dates; upstream ignores it.
 *
 * @module
 */
import { createCipheriv, createDecipheriv, pbkdf2, randomBytes } from 'node:crypto'
import { promisify } from 'node:util'
import { CaError } from './errors.ts'
import { dumpYamlSubset, parseYamlSubset, type YamlDoc } from './yaml-subset.ts'

const pbkdf2Async = promisify(pbkdf2)

/** PBKDF2 iteration count used by upstream `crypto.kdf`. */
export const PRIVATE_YML_KDF_ITERATIONS = 100_000

/** Keys of the decrypted document that are not per-name private keys. */
const RESERVED_KEYS = new Set(['ca', 'lastserial', 'revoked_keys', 'revocation_dates'])

/** The decrypted content of `private.yml`. */
export interface CaPrivateData {
  /** The CA private key, unencrypted PKCS#8 PEM ('' before `init`). */
  ca: string
  /** The last serial number used; the CA certificate itself is serial 1. */
  lastserial: number
  /** Revoked serials, decimal strings, in revocation order. */
  revokedKeys: string[]
  /** Revocation time per revoked serial (ISO 8601); missing for entries written by upstream. */
  revocationDates: Record<string, string>
  /** Private key PEM per issued certificate name (encrypted if it was created with a password). */
  keys: Record<string, string>
}

/** A decrypted `private.yml` with the salt it was sealed with (kept on rewrite, as upstream). */
export interface UnsealedPrivateYml {
  data: CaPrivateData
  salt: string
}

/** An empty keystore (what upstream's `read_private` returns when the file does not exist). */
export function emptyPrivateData(): CaPrivateData {
  return { ca: '', lastserial: 0, revokedKeys: [], revocationDates: {}, keys: {} }
}

/** A fresh salt as upstream makes it: base64 of 32 random bytes. */
export function newPrivateYmlSalt(): string {
  return randomBytes(32).toString('base64')
}

async function deriveKey(password: string, salt: string): Promise<Buffer> {
  return pbkdf2Async(
    Buffer.from(password, 'utf8'),
    Buffer.from(salt, 'utf8'),
    PRIVATE_YML_KDF_ITERATIONS,
    32,
    'sha256',
  )
}

const enc = new TextEncoder()
const dec = new TextDecoder('utf-8', { fatal: true })

/**
 * Encrypts `data` with the CA password into the text of `private.yml`.
 *
 * @param salt reuse the salt read from the existing file (upstream keeps it); a new one otherwise.
 */
export async function sealPrivateYml(
  data: CaPrivateData,
  password: string,
  salt = newPrivateYmlSalt(),
): Promise<string> {
  const inner: YamlDoc = {}
  for (const [name, pem] of Object.entries(data.keys)) {
    if (RESERVED_KEYS.has(name))
      throw new CaError('ERR_CA_INVALID_INPUT', `certificate name ${name} is reserved`)
    inner[name] = enc.encode(pem)
  }
  inner.ca = enc.encode(data.ca)
  inner.lastserial = data.lastserial
  inner.revoked_keys = [...data.revokedKeys]
  if (Object.keys(data.revocationDates).length > 0)
    inner.revocation_dates = { ...data.revocationDates }
  const plaintext = enc.encode(dumpYamlSubset(inner))
  const key = await deriveKey(password, salt)
  const iv = randomBytes(16)
  const cipher = createCipheriv('aes-256-gcm', key, iv)
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()])
  const blob = Buffer.concat([iv, ct, cipher.getAuthTag()])
  return dumpYamlSubset({ priv: enc.encode(blob.toString('base64')), salt })
}

/**
 * Decrypts the text of `private.yml`.
 *
 * @throws {CaError} `ERR_CA_BAD_PASSWORD` when the password is wrong (GCM tag mismatch);
 *   `ERR_CA_MALFORMED` when the file is not a keystore.
 */
export async function unsealPrivateYml(
  text: string,
  password: string,
): Promise<UnsealedPrivateYml> {
  const outer = parseYamlSubset(text)
  const salt = outer.salt
  const priv = outer.priv
  if (typeof salt !== 'string' || !(priv instanceof Uint8Array)) {
    throw new CaError('ERR_CA_MALFORMED', 'private.yml lacks salt or priv')
  }
  const b64 = Buffer.from(priv).toString('latin1').replace(/\s+/g, '')
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
    throw new CaError('ERR_CA_MALFORMED', 'private.yml priv is not base64')
  const blob = Buffer.from(b64, 'base64')
  if (blob.length < 32) throw new CaError('ERR_CA_MALFORMED', 'private.yml priv is too short')
  const key = await deriveKey(password, salt)
  let plain: Buffer
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 16))
    decipher.setAuthTag(blob.subarray(blob.length - 16))
    plain = Buffer.concat([decipher.update(blob.subarray(16, blob.length - 16)), decipher.final()])
  } catch (cause) {
    throw new CaError('ERR_CA_BAD_PASSWORD', 'invalid password for the CA keystore private.yml', {
      cause,
    })
  }
  let inner: YamlDoc
  try {
    inner = parseYamlSubset(dec.decode(plain))
  } catch (cause) {
    throw new CaError('ERR_CA_MALFORMED', 'private.yml content is not valid keystore YAML', {
      cause,
    })
  }
  const data = emptyPrivateData()
  for (const [k, v] of Object.entries(inner)) {
    if (k === 'ca')
      data.ca = v instanceof Uint8Array ? dec.decode(v) : typeof v === 'string' ? v : ''
    else if (k === 'lastserial') {
      if (typeof v !== 'number')
        throw new CaError('ERR_CA_MALFORMED', 'private.yml lastserial is not a number')
      data.lastserial = v
    } else if (k === 'revoked_keys') {
      if (!Array.isArray(v))
        throw new CaError('ERR_CA_MALFORMED', 'private.yml revoked_keys is not a list')
      data.revokedKeys = v.map(String)
    } else if (k === 'revocation_dates') {
      if (typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) {
        throw new CaError('ERR_CA_MALFORMED', 'private.yml revocation_dates is not a map')
      }
      data.revocationDates = { ...v }
    } else if (v instanceof Uint8Array) data.keys[k] = dec.decode(v)
    else if (typeof v === 'string') data.keys[k] = v
  }
  return { data, salt }
}
