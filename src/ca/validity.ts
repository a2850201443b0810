/**
 * Serial numbers and validity windows shared by the certificate and CRL builders.
 *
 * @module
 */
import { CaError } from './errors.ts'

/** One day in milliseconds. */
export const DAY_MS = 86_400_000

/** Encodes a positive serial (number, bigint or decimal string) as the hex @peculiar/x509 expects. */
export function serialToHex(serial: number | bigint | string): string {
  let n: bigint
  try {
    n = BigInt(serial)
  } catch (cause) {
    throw new CaError('ERR_CA_INVALID_INPUT', 'serial number is not an integer', { cause })
  }
  if (n < 1n || n >= 1n << 159n)
    throw new CaError('ERR_CA_INVALID_INPUT', 'serial number out of range')
  let hex = n.toString(16)
  if (hex.length % 2) hex = `0${hex}`
  // A leading 1-bit would make the DER INTEGER negative: prefix a zero byte.
  if (Number.parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`
  return hex
}

/** Returns `now + days`, validating `now`. */
export function addDays(now: Date, days: number): Date {
  if (Number.isNaN(now.getTime())) throw new CaError('ERR_CA_INVALID_INPUT', 'invalid time')
  return new Date(now.getTime() + days * DAY_MS)
}
