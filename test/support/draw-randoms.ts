/**
 * Draws values from the random sources of every role (quote and tenant nonces, challenges, keys), for the
 * CVE-2026-6420 test to compare across a Worker and a separate process. As a worker it posts
 * `{ nonces, challenges, keys }`; as a script (`bun draw-randoms.ts N`) it prints the same JSON.
 *
 * @module
 */
import { randomPassword } from '../../src/protocol/random-password.ts'
import { generateChallenge } from '../../src/registrar/generate-challenge.ts'
import { generatePayloadKeys } from '../../src/tenant/payload-keys.ts'

/** What one draw returns. */
export interface Draws {
  nonces: string[]
  challenges: string[]
  keys: string[]
}

/** Draws `n` of each. */
export function draw(n: number): Draws {
  const out: Draws = { nonces: [], challenges: [], keys: [] }
  for (let i = 0; i < n; i++) {
    out.nonces.push(randomPassword(20))
    out.challenges.push(generateChallenge())
    out.keys.push(generatePayloadKeys().k.toString('hex'))
  }
  return out
}

declare const self: Worker
if (typeof Bun !== 'undefined' && !Bun.isMainThread) {
  self.onmessage = (e: MessageEvent<number>) => self.postMessage(draw(e.data))
} else if (import.meta.main) {
  console.log(JSON.stringify(draw(Number(process.argv[2] ?? 1000))))
}
