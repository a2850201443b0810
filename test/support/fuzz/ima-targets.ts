/**
 * Fuzz seeds and targets of the IMA parsers, shared by `ima-fuzz.test.ts` (5,000 cases) and
 * `bench/fuzz-ima.ts` (1,000,000).
 *
 * @module
 */

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadRuntimePolicy } from '../../../src/ima/compile-runtime-policy.ts'
import { parseAsciiList } from '../../../src/ima/parse-ascii-list.ts'
import { parseBinaryList } from '../../../src/ima/parse-binary-list.ts'

const FIX = join(import.meta.dir, '../../fixtures/ima')
const decoder = new TextDecoder()

/** Seeds shared with bench/fuzz-ima.ts. */
export function imaFuzzSeeds(): {
  ascii: Uint8Array[]
  binary: Uint8Array[]
  policy: Uint8Array[]
} {
  const read = (p: string) => new Uint8Array(readFileSync(join(FIX, p)))
  const list = readFileSync(join(FIX, 'synthetic/all-templates.txt'), 'utf8')
  const policy = {
    meta: { version: 1, generator: 3 },
    release: 0,
    digests: { '/usr/bin/a': ['ab'.repeat(32)], boot_aggregate: ['00'.repeat(20)] },
    excludes: ['/tmp/.*', '(?P<x>/proc)'],
    keyrings: { '.ima': ['cd'.repeat(32)] },
    ima: { ignored_keyrings: [], log_hash_alg: 'sha1', dm_policy: null },
    'ima-buf': {},
    'verification-keys': JSON.stringify({
      keyids: [1],
      pubkeys: ['MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE'],
    }),
  }
  return {
    ascii: [
      Buffer.from(list),
      ...list
        .split('\n')
        .filter((l) => l)
        .map((l) => Buffer.from(l)),
      read('synthetic/malformed.txt'),
    ],
    binary: [
      read('synthetic/all-templates.bin'),
      read('vm/a/binary_runtime_measurements').subarray(0, 2000),
    ],
    policy: [
      Buffer.from(JSON.stringify(policy)),
      Buffer.from(JSON.stringify({ payload: 'e30=', payloadType: 'x', signatures: [] })),
    ],
  }
}

/** Parser entry points, bytes in. */
export const IMA_FUZZ_TARGETS = {
  ascii: (b: Uint8Array) => [...parseAsciiList(decoder.decode(b))].length,
  binary: (b: Uint8Array) => parseBinaryList(b).length,
  policy: (b: Uint8Array) => loadRuntimePolicy(b).pathCount,
} as const
