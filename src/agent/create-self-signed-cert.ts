/**
 * A self-signed X.509v3 certificate for the agent's mTLS server key (RFC 5280 §4.1), written with
 * a minimal DER encoder (X.690 §8: definite lengths, primitive and constructed TLVs) and signed
 * with node:crypto. It replaces @peculiar/x509 in the agent: that library (with tsyringe and
 * reflect-metadata) costs ≈ 20 MB of RSS once evaluated, for one certificate per agent lifetime.
 *
 * Only what rust-keylime's `crypto/x509.rs` puts in the agent certificate is supported: an ECDSA
 * P-256 / SHA-256 signature, subject = issuer = `CN=<commonName>`, basicConstraints (critical,
 * cA false) and subjectAltName with DNS names and IPv4/IPv6 addresses.
 *
 * @module
 */

import { type KeyObject, sign } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'

/** X.690 §8.1.2 tags used here (universal class unless noted). */
const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
  /** [0] EXPLICIT, constructed (TBSCertificate.version). */
  CTX_0: 0xa0,
  /** [3] EXPLICIT, constructed (TBSCertificate.extensions). */
  CTX_3: 0xa3,
  /** GeneralName dNSName [2] IA5String, primitive. */
  SAN_DNS: 0x82,
  /** GeneralName iPAddress [7] OCTET STRING, primitive. */
  SAN_IP: 0x87,
} as const

/** Object identifiers (dotted). */
const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  subjectAltName: '2.5.29.17',
} as const

/** One TLV with a definite length (X.690 §8.1.3: short form < 128, else long form). */
function tlv(tag: number, content: Uint8Array): Buffer {
  const n = content.byteLength
  let len: number[]
  if (n < 0x80) len = [n]
  else {
    const bytes: number[] = []
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
    len = [0x80 | bytes.length, ...bytes]
  }
  return Buffer.concat([Buffer.from([tag, ...len]), content])
}

const seq = (...items: Uint8Array[]) => tlv(TAG.SEQUENCE, Buffer.concat(items))

/** OBJECT IDENTIFIER (X.690 §8.19: first two arcs combined, base-128 arcs). */
function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number)
  const out: number[] = [40 * arcs[0]! + arcs[1]!]
  for (const arc of arcs.slice(2)) {
    const b: number[] = [arc & 0x7f]
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f))
    out.push(...b)
  }
  return tlv(TAG.OID, Buffer.from(out))
}

/** A non-negative INTEGER from big-endian bytes (leading zeros trimmed, sign byte added). */
function uint(bytes: Uint8Array): Buffer {
  let b = Buffer.from(bytes)
  while (b.byteLength > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1)
  if ((b[0]! & 0x80) !== 0) b = Buffer.concat([Buffer.from([0]), b])
  return tlv(TAG.INTEGER, b)
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, both in UTC, seconds. */
function time(d: Date): Buffer {
  const iso = d.toISOString() // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '')
  return d.getUTCFullYear() < 2050
    ? tlv(TAG.UTC_TIME, Buffer.from(`${digits.slice(2)}Z`, 'latin1'))
    : tlv(TAG.GENERALIZED_TIME, Buffer.from(`${digits}Z`, 'latin1'))
}

/** `Name` with one RDN, CN (UTF8String). */
function commonNameRdn(cn: string): Buffer {
  return seq(tlv(TAG.SET, seq(oid(OID.commonName), tlv(TAG.UTF8_STRING, Buffer.from(cn)))))
}

/** An address literal as the octets of iPAddress (4 or 16 bytes). */
function ipOctets(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number))
  if (!isIPv6(ip)) throw new TypeError(`not an IP address literal: ${ip}`)
  let text = ip
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4 !== null) {
    const o = v4[1]!.split('.').map(Number)
    text = `${text.slice(0, -v4[1]!.length)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups =
    tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  const out = Buffer.alloc(16)
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g, 16), i * 2)
  return out
}

/** What {@link createSelfSignedCert} writes into the certificate. */
export interface SelfSignedCertOptions {
  /** Subject and issuer CN. */
  commonName: string
  /** The certificate's public key as SubjectPublicKeyInfo DER (EC P-256). */
  spkiDer: Uint8Array
  /** The matching private key: it signs the certificate (ECDSA with SHA-256). */
  privateKey: KeyObject
  /** Positive serial number, big-endian (at most 20 bytes, RFC 5280 §4.1.2.2). */
  serial: Uint8Array
  notBefore: Date
  notAfter: Date
  /** subjectAltName dNSName entries. */
  dnsNames: readonly string[]
  /** subjectAltName iPAddress entries (IPv4 or IPv6 literals). */
  ipAddresses: readonly string[]
}

/**
 * Builds and signs the certificate; returns it as PEM.
 *
 * @example
 * ```ts
 * const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
 * const pem = createSelfSignedCert({
 *   commonName: uuid, spkiDer: publicKey.export({ format: 'der', type: 'spki' }), privateKey,
 *   serial: randomBytes(8), notBefore: now, notAfter: inOneYear,
 *   dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'],
 * })
 * ```
 */
export function createSelfSignedCert(o: SelfSignedCertOptions): string {
  if (o.serial.byteLength === 0 || o.serial.byteLength > 20) {
    throw new RangeError('serial must be 1 to 20 bytes')
  }
  const sigAlg = seq(oid(OID.ecdsaWithSha256))
  const name = commonNameRdn(o.commonName)
  const san = seq(
    ...o.dnsNames.map((d) => tlv(TAG.SAN_DNS, Buffer.from(d, 'latin1'))),
    ...o.ipAddresses.map((ip) => tlv(TAG.SAN_IP, ipOctets(ip))),
  )
  const extensions = seq(
    seq(
      oid(OID.basicConstraints),
      tlv(TAG.BOOLEAN, Buffer.from([0xff])),
      tlv(TAG.OCTET_STRING, seq()),
    ),
    seq(oid(OID.subjectAltName), tlv(TAG.OCTET_STRING, san)),
  )
  const tbs = seq(
    tlv(TAG.CTX_0, uint(Buffer.from([2]))), // v3
    uint(o.serial),
    sigAlg,
    name,
    seq(time(o.notBefore), time(o.notAfter)),
    name,
    Buffer.from(o.spkiDer),
    tlv(TAG.CTX_3, extensions),
  )
  const signature = sign('sha256', tbs, { key: o.privateKey, dsaEncoding: 'der' })
  const der = seq(tbs, sigAlg, tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), signature])))
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n')
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`
}
