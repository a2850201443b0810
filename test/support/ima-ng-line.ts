/**
 * IMA measurement lists made by hand for tests: an `ima-ng` line as the kernel writes it, and the
 * digest the kernel extends into PCR 10 of the SHA-256 bank for it.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { parseAsciiList } from '../../src/ima/parse-ascii-list.ts'

/** One ima-ng line for `path` with file digest `digest` (sha256 hex). */
export function imaNgLine(path: string, digest: string): string {
  const field = (b: Buffer) => {
    const len = Buffer.alloc(4)
    len.writeUInt32LE(b.byteLength)
    return Buffer.concat([len, b])
  }
  const data = Buffer.concat([
    field(Buffer.concat([Buffer.from('sha256:\0'), Buffer.from(digest, 'hex')])),
    field(Buffer.from(`${path}\0`)),
  ])
  const sha1 = createHash('sha1').update(data).digest('hex')
  return `10 ${sha1} ima-ng sha256:${digest} ${path}\n`
}

/** The SHA-256 bank digests the kernel extends into PCR 10 for each entry of `list`. */
export function imaSha256Extends(list: string): Buffer[] {
  return [...parseAsciiList(list)].map((e) =>
    /^0+$/.test(e.templateHash)
      ? Buffer.alloc(32, 0xff)
      : createHash('sha256').update(e.templateData).digest(),
  )
}

/** A test script as keylime-tests writes one (`echo This is <name>`): its path and sha256. */
export function testScript(name: string): { path: string; digest: string } {
  return {
    path: `/var/tmp/keylime-test/${name}.sh`,
    digest: createHash('sha256').update(`#!/bin/bash\necho This is ${name}\n`).digest('hex'),
  }
}
