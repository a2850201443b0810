/**
 * Steady-state snapshots (the columns a passing round writes) for rows `ids`, as round `n` of
 * the attestation loop would flush them: used by `test/verifier-writes.test.ts` and
 * `bench/verifier-writes.ts`.
 *
 * @module
 */
import type { HotSnapshot } from '../../src/verifier/store.ts'

/** One {@link HotSnapshot} per id, with counters and clock at `n`. */
export function roundSnapshots(ids: readonly string[], n: number): HotSnapshot[] {
  return ids.map((agent_id) => ({
    agent_id,
    operational_state: 3,
    attestation_count: n,
    last_received_quote: 1_700_000_000 + n,
    last_successful_attestation: 1_700_000_000 + n,
    tpm_clockinfo: { clock: n, resetcount: 0, restartcount: 0, safe: 1 },
  }))
}
