/**
 * ECDSA verification over a *prehashed* digest (FIPS 186-4 §6.4.2) for NIST P-256, P-384 and
 * P-521 and for secp256k1 (SEC 2 §2.4.1; Bun's BoringSSL lacks that curve), in BigInt arithmetic. IMA signs the file digest itself (the kernel's
 * `public_key_verify_signature` gets the digest, like `Prehashed` in upstream Python), and
 * `node:crypto` can only verify ECDSA over a message it hashes itself. Only public data is
 * processed here, so constant time is not a concern.
 *
 * @module
 */

interface Curve {
  p: bigint
  /** Coefficient a of y² = x³ + ax + b (mod p). */
  a: bigint
  n: bigint
  b: bigint
  gx: bigint
  gy: bigint
  bits: number
}

/** SEC 2 / FIPS 186-4 domain parameters. */
export const NIST_CURVES: Readonly<Record<string, Curve>> = {
  'P-256': {
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    a: -3n,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    b: 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn,
    gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
    bits: 256,
  },
  'P-384': {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    a: -3n,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    b: 0xb3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aefn,
    gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
    bits: 384,
  },
  'P-521': {
    p: (1n << 521n) - 1n,
    a: -3n,
    n: 0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    b: 0x0051953eb9618e1c9a1f929a21a0b68540eea2da725b99b315f3b8b489918ef109e156193951ec7e937b1652c0bd3bb1bf073573df883d2c34f1ef451fd46b503f00n,
    gx: 0x00c6858e06b70404e9cd9e3ecb662395b4429c648139053fb521f828af606b4d3dbaa14b5e77efe75928fe1dc127a2ffa8de3348b3c1856a429bf97e7e31c2e5bd66n,
    gy: 0x011839296a789a3bc0045c8a5fb42c7d1bd998f54449579b446817afbd17273e662c97ee72995ef42640c550b9013fad0761353c7086a272c24088be94769fd16650n,
    bits: 521,
  },
  // SEC 2 v2 §2.4.1
  secp256k1: {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn,
    a: 0n,
    n: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
    b: 7n,
    gx: 0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n,
    gy: 0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n,
    bits: 256,
  },
}

const mod = (a: bigint, m: bigint): bigint => {
  const r = a % m
  return r < 0n ? r + m : r
}

function inv(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m]
  let [s0, s1] = [1n, 0n]
  while (r1 !== 0n) {
    const q = r0 / r1
    ;[r0, r1] = [r1, r0 - q * r1]
    ;[s0, s1] = [s1, s0 - q * s1]
  }
  return mod(s0, m)
}

type Jac = [bigint, bigint, bigint]

function dbl(P: Jac, p: bigint, a: bigint): Jac {
  const [X, Y, Z] = P
  if (Y === 0n || Z === 0n) return [0n, 1n, 0n]
  const YY = (Y * Y) % p
  const S = (4n * X * YY) % p
  const ZZ = (Z * Z) % p
  // M = 3X² + aZ⁴; for a = -3 that is 3(X - Z²)(X + Z²)
  const M = a === -3n ? mod(3n * (X - ZZ) * (X + ZZ), p) : mod(3n * X * X + a * ZZ * ZZ, p)
  const X3 = mod(M * M - 2n * S, p)
  const Y3 = mod(M * (S - X3) - 8n * YY * YY, p)
  const Z3 = (2n * Y * Z) % p
  return [X3, Y3, Z3]
}

function add(P: Jac, Q: Jac, p: bigint, a: bigint): Jac {
  if (P[2] === 0n) return Q
  if (Q[2] === 0n) return P
  const Z1Z1 = (P[2] * P[2]) % p
  const Z2Z2 = (Q[2] * Q[2]) % p
  const U1 = (P[0] * Z2Z2) % p
  const U2 = (Q[0] * Z1Z1) % p
  const S1 = (P[1] * Q[2] * Z2Z2) % p
  const S2 = (Q[1] * P[2] * Z1Z1) % p
  if (U1 === U2) return S1 === S2 ? dbl(P, p, a) : [0n, 1n, 0n]
  const H = mod(U2 - U1, p)
  const R = mod(S2 - S1, p)
  const HH = (H * H) % p
  const HHH = (H * HH) % p
  const V = (U1 * HH) % p
  const X3 = mod(R * R - HHH - 2n * V, p)
  const Y3 = mod(R * (V - X3) - S1 * HHH, p)
  const Z3 = (P[2] * Q[2] * H) % p
  return [X3, Y3, Z3]
}

function toBig(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${Buffer.from(b).toString('hex')}`)
}

/** Decodes a DER `SEQUENCE { INTEGER r, INTEGER s }`; null when malformed. */
export function decodeDerEcdsaSig(sig: Uint8Array): [bigint, bigint] | null {
  let p = 0
  const len = (): number => {
    const b = sig[p++]
    if (b === undefined) return -1
    if (b < 0x80) return b
    const n = b & 0x7f
    if (n === 0 || n > 2) return -1
    let v = 0
    for (let i = 0; i < n; i++) {
      const x = sig[p++]
      if (x === undefined) return -1
      v = (v << 8) | x
    }
    return v
  }
  if (sig[p++] !== 0x30) return null
  const total = len()
  if (total < 0 || p + total !== sig.length) return null
  const ints: bigint[] = []
  for (let k = 0; k < 2; k++) {
    if (sig[p++] !== 0x02) return null
    const l = len()
    if (l <= 0 || p + l > sig.length) return null
    ints.push(toBig(sig.subarray(p, p + l)))
    p += l
  }
  if (p !== sig.length) return null
  return [ints[0] as bigint, ints[1] as bigint]
}

/**
 * Verifies a DER ECDSA signature over `digest` with the public point (`x`, `y`) on `curve`.
 * Returns false for anything malformed.
 */
export function verifyEcdsaPrehashed(
  curve: string,
  x: bigint,
  y: bigint,
  digest: Uint8Array,
  derSig: Uint8Array,
): boolean {
  const c = NIST_CURVES[curve]
  if (c === undefined) return false
  const rs = decodeDerEcdsaSig(derSig)
  if (rs === null) return false
  const [r, s] = rs
  if (r <= 0n || r >= c.n || s <= 0n || s >= c.n) return false
  let e = toBig(digest)
  const dbits = digest.length * 8
  if (dbits > c.bits) e >>= BigInt(dbits - c.bits)
  const w = inv(s, c.n)
  const u1 = (e * w) % c.n
  const u2 = (r * w) % c.n
  const G: Jac = [c.gx, c.gy, 1n]
  const Q: Jac = [x, y, 1n]
  const GQ = add(G, Q, c.p, c.a)
  let R: Jac = [0n, 1n, 0n]
  const nb = Math.max(u1.toString(2).length, u2.toString(2).length)
  for (let i = nb - 1; i >= 0; i--) {
    R = dbl(R, c.p, c.a)
    const b1 = (u1 >> BigInt(i)) & 1n
    const b2 = (u2 >> BigInt(i)) & 1n
    if (b1 && b2) R = add(R, GQ, c.p, c.a)
    else if (b1) R = add(R, G, c.p, c.a)
    else if (b2) R = add(R, Q, c.p, c.a)
  }
  if (R[2] === 0n) return false
  const zi = inv(R[2], c.p)
  const xa = (R[0] * zi * zi) % c.p
  return xa % c.n === r
}
