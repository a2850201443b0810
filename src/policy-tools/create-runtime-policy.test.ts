import { describe, expect, test } from 'bun:test'
import { describeUnreadable } from './create-runtime-policy.ts'

describe('describeUnreadable', () => {
  test('names the count, the error codes and the first five paths', () => {
    const m = new Map(Array.from({ length: 7 }, (_, i) => [`/r/f${i}`, i === 3 ? 'EIO' : 'EACCES']))
    expect(describeUnreadable('/r', m)).toBe(
      '7 paths under /r could not be read (EACCES, EIO) and are not in the policy: ' +
        '/r/f0, /r/f1, /r/f2, /r/f3, /r/f4, … (2 more); run the tool as root to include them',
    )
    expect(describeUnreadable('/r', new Map([['/r/x', 'EACCES']]))).toBe(
      '1 path under /r could not be read (EACCES) and is not in the policy: /r/x; ' +
        'run the tool as root to include it',
    )
  })
})
