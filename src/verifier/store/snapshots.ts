/**
 * Poll-loop snapshots: the columns the attestation loop owns, written for many agents in one
 * statement (`jsonb_to_recordset` → `UPDATE … FROM`), whole or only the hot columns.
 *
 * @module
 */
import { sql, type SQL } from 'drizzle-orm'
import { type Db, queryRows } from '../../db/index.ts'

/** The columns the poll loop owns, written in batches (one snapshot per agent). */
export interface AgentSnapshot {
  agent_id: string
  operational_state: number
  attestation_count: number
  last_received_quote: number
  last_successful_attestation: number
  tpm_clockinfo: unknown
  hash_alg: string
  enc_alg: string
  sign_alg: string
  severity_level: number | null
  last_event_id: string | null
  public_key: string
  supported_version: string
  next_ima_ml_entry: number
  boottime: number
  ima_pcrs: unknown
  /** Hex of the running PCR 10 of the quote bank, or null. */
  pcr10: string | null
  learned_ima_keyrings: unknown
}

/** The columns every passing round changes: all a steady-state agent's write needs. */
export type HotSnapshot = Pick<
  AgentSnapshot,
  | 'agent_id'
  | 'operational_state'
  | 'attestation_count'
  | 'last_received_quote'
  | 'last_successful_attestation'
  | 'tpm_clockinfo'
>

/** Snapshot columns: name, SQL type in the JSON record, SET expression. */
const SNAPSHOT_COLUMNS: readonly (readonly [string, string, string?])[] = [
  ['operational_state', 'integer'],
  ['attestation_count', 'integer'],
  ['last_received_quote', 'bigint'],
  ['last_successful_attestation', 'bigint'],
  ['tpm_clockinfo', 'jsonb'],
  ['hash_alg', 'text'],
  ['enc_alg', 'text'],
  ['sign_alg', 'text'],
  ['severity_level', 'integer'],
  ['last_event_id', 'text'],
  ['public_key', 'text'],
  ['supported_version', 'text'],
  ['next_ima_ml_entry', 'integer'],
  ['boottime', 'bigint'],
  ['ima_pcrs', 'jsonb'],
  ['pcr10', 'text', "CASE WHEN u.pcr10 IS NULL THEN NULL ELSE decode(u.pcr10, 'hex') END"],
  ['learned_ima_keyrings', 'jsonb'],
]
const HOT_COLUMNS = 5

/** `SET …` and `u(…)` of the snapshot update over the first `n` columns. */
function snapshotSql(n: number): { set: SQL; record: SQL } {
  const cols = SNAPSHOT_COLUMNS.slice(0, n)
  return {
    set: sql.raw(cols.map(([c, , e]) => `${c} = ${e ?? `u.${c}`}`).join(', ')),
    record: sql.raw(['agent_id text', ...cols.map(([c, t]) => `${c} ${t}`)].join(', ')),
  }
}
const FULL_SQL = snapshotSql(SNAPSHOT_COLUMNS.length)
const HOT_SQL = snapshotSql(HOT_COLUMNS)

/**
 * Writes poll-loop snapshots in one statement: whole ones, or only the columns of
 * {@link HotSnapshot} (`hot`, a steady-state round: a fifth of the JSON). Each written row's
 * lease is extended to `leaseExpires` on the way, so agents polled more often than the lease
 * tick need no separate renewal. Rows that are TERMINATED, TENANT_FAILED, deleted or leased by
 * another instance are left alone; their ids are returned (normally none, so a write costs no
 * result rows) for the caller to reconcile.
 */
export async function writeSnapshots(
  db: Db,
  owner: string,
  snaps: readonly AgentSnapshot[] | readonly HotSnapshot[],
  leaseExpires: number,
  hot = false,
): Promise<string[]> {
  if (snaps.length === 0) return []
  const json = JSON.stringify(snaps)
  const q = hot ? HOT_SQL : FULL_SQL
  const r = await queryRows<{ agent_id: string }>(
    db,
    sql`WITH u AS (SELECT * FROM jsonb_to_recordset(${json}::jsonb) AS u(${q.record})),
        w AS (
          UPDATE verifiermain AS m SET ${q.set}, lease_expires = ${leaseExpires} FROM u
          WHERE m.agent_id = u.agent_id AND m.operational_state NOT IN (8, 10)
            AND (m.lease_owner = ${owner} OR m.lease_owner IS NULL)
          RETURNING m.agent_id)
        SELECT u.agent_id FROM u WHERE NOT EXISTS (SELECT 1 FROM w WHERE w.agent_id = u.agent_id)`,
  )
  return r.map((x) => x.agent_id)
}
