/**
 * IMA file signatures made with openssl the way keylime-tests makes them, for the
 * `test/keylime-tests` mirrors: `limeInstallIMAKeys` (an RSA key `privkey_<s>.pem` and its public
 * key `x509_<s>.pem`, PEM despite the name) and `evmctl ima_sign` (a `security.ima` value:
 * `signature_v2_hdr` — type 03, version 2, hash_algo 4 = sha256, keyid, size — and the RSA
 * PKCS#1 v1.5 signature of the file's sha256 digest). The keyid is evmctl's: the last 4 bytes of
 * SHA-1 over the PKCS#1 `RSAPublicKey`, read back from openssl, independent of our keyring code.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openssl } from './ca-helpers.ts'

/** An IMA signing key on disk. */
export interface ImaSigningKey {
  /** `privkey_<suffix>.pem`. */
  privateKey: string
  /** `x509_<suffix>.pem` (the public key, PEM), what `--sign_verification_key` takes. */
  publicKey: string
  /** evmctl's keyid (4 bytes, hex). */
  keyid: string
}

function must(args: string[], cwd: string): void {
  const r = openssl(args, cwd)
  if (r.code !== 0) throw new Error(`openssl ${args[0]} failed: ${r.out}`)
}

/** `limeInstallIMAKeys <suffix> <dir>`, with a 2048-bit key (upstream: 3072) to keep tests fast. */
export function makeImaSigningKey(dir: string, suffix: string): ImaSigningKey {
  const privateKey = join(dir, `privkey_${suffix}.pem`)
  const publicKey = join(dir, `x509_${suffix}.pem`)
  must(['genrsa', '-out', privateKey, '2048'], dir)
  must(['rsa', '-pubout', '-in', privateKey, '-out', publicKey], dir)
  const pkcs1 = join(dir, `pkcs1_${suffix}.der`)
  must(
    ['rsa', '-pubin', '-in', publicKey, '-RSAPublicKey_out', '-outform', 'DER', '-out', pkcs1],
    dir,
  )
  const keyid = createHash('sha1').update(readFileSync(pkcs1)).digest().subarray(16).toString('hex')
  return { privateKey, publicKey, keyid }
}

/** `evmctl ima_sign -a sha256 --key <key> <file>` for a file holding `content`: the xattr, hex. */
export function imaSign(key: ImaSigningKey, dir: string, content: string): string {
  const file = join(dir, 'to-sign')
  writeFileSync(file, content)
  must(['dgst', '-sha256', '-sign', key.privateKey, '-out', `${file}.sig`, file], dir)
  const sig = readFileSync(`${file}.sig`)
  const header = Buffer.alloc(9)
  header[0] = 0x03
  header[1] = 0x02
  header[2] = 0x04
  Buffer.from(key.keyid, 'hex').copy(header, 3)
  header.writeUInt16BE(sig.byteLength, 7)
  return Buffer.concat([header, sig]).toString('hex')
}
