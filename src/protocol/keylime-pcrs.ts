/**
 * The PCRs Keylime reserves for its own checks (upstream `keylime/config.py`: `IMA_PCR`,
 * `TPM_DATA_PCR`, `MEASUREDBOOT_PCRS`). The tenant refuses them in a user `tpm_policy`; the
 * verifier adds them to the quote mask when the matching policy is active.
 *
 * @module
 */

/** PCR of the IMA measurement list (`config.IMA_PCR`). */
export const IMA_PCR = 10

/** PCR the agent extends with its NK, binding the identity quote to it (`config.TPM_DATA_PCR`). */
export const TPM_DATA_PCR = 16

/** PCRs that carry measured boot: 0–9 and 11–15 (`config.MEASUREDBOOT_PCRS`). */
export const MEASUREDBOOT_PCRS: readonly number[] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15,
]
