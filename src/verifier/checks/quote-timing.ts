/**
 * Upstream's clock check between two quotes of one agent (`tpm_main.py: check_quote_timing`):
 * a TPM whose reset or restart count went back, whose clock is not `safe`, or whose clock did
 * not advance without a reset or restart is answering with a replayed or forged quote.
 *
 * @module
 */
import type { ClockInfo } from '../../tpm/attest.ts'

/** The stored clock state (`tpm_clockinfo`), as upstream's `TPMClockInfo.to_dict`. */
export interface StoredClockInfo {
  clock: number
  resetcount: number
  restartcount: number
  safe: number
}

/** Compares the clock of a new quote with the stored one; returns upstream's error text, or undefined. */
export function checkQuoteTiming(prev: StoredClockInfo, cur: ClockInfo): string | undefined {
  const resetdiff = cur.resetCount - prev.resetcount
  const restartdiff = cur.restartCount - prev.restartcount
  if (resetdiff < 0) return 'resetCount value decreased on TPM between two consecutive quotes'
  if (restartdiff < 0) return 'restartCount value decreased on TPM between two consecutive quotes'
  if (!cur.safe) return 'clock safe flag is disabled'
  if (!(resetdiff && restartdiff) && Number(cur.clock) - prev.clock <= 0) {
    return 'clock timestamp did issued by TPM did not increase between two consecutive quotes'
  }
  return undefined
}
