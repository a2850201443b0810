/**
 * Measures the simulator's own costs: RSS per agent for a fleet of `--count` agents in a layout,
 * and how many quotes one core signs per second with ECDSA P-256 and RSA-2048 AKs.
 *
 * ```
 * bun bench/fleet/measure.ts --count 10000 --listen addresses
 * ```
 *
 * @module
 */
import 'reflect-metadata'
import { parseArgs } from 'node:util'
import { createAgentCert } from '../../test/support/fleet/agent-cert.ts'
import { type ListenMode, startFleet } from '../../test/support/fleet/fleet.ts'
import { generateSoftTpmKey, type SoftKeyType, SoftTpm } from '../../test/support/fleet/soft-tpm.ts'

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    listen: { type: 'string', default: 'addresses' },
    'shared-keys': { type: 'boolean', default: true },
  },
})

function quotesPerSecond(kind: SoftKeyType): number {
  const tpm = new SoftTpm({
    keys: {
      ek: generateSoftTpmKey('ecc'),
      ak: generateSoftTpmKey(kind),
      nk: generateSoftTpmKey('rsa'),
    },
  })
  const n = kind === 'rsa' ? 1000 : 10000
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    tpm.bindNk()
    tpm.quote(`nonce${i}`, [10, 15, 16])
  }
  return (n * 1000) / (performance.now() - t0)
}

console.log(
  `quotes/s on one core (bindNk + quote + blob + string): ecdsa ${quotesPerSecond('ecc').toFixed(0)}, rsa ${quotesPerSecond('rsa').toFixed(0)}`,
)
const count = Number(values.count)
const ca = await createAgentCert('measure-ca')
Bun.gc(true)
const rss0 = process.memoryUsage().rss
const t0 = performance.now()
const fleet = await startFleet({
  count,
  caCertPem: ca.certPem,
  listen: values.listen as ListenMode,
  port: 0,
  sharedKeys: values['shared-keys'],
  imaEntries: 100,
})
const ms = performance.now() - t0
Bun.gc(true)
const rss1 = process.memoryUsage().rss
console.log(
  `${count} agents (${values.listen}, shared keys ${values['shared-keys']}): start ${ms.toFixed(0)} ms, ` +
    `RSS +${((rss1 - rss0) / 1048576).toFixed(1)} MiB = ${((rss1 - rss0) / count / 1024).toFixed(1)} KiB/agent, total ${(rss1 / 1048576).toFixed(0)} MiB`,
)
await fleet.stop()
