/**
 * Mirror of keylime-tests `functional/keylime_create_policy-static-data`
 * (RedHat-SP-Security/keylime-tests `ab163590314546d90cdcd7a89e56d3d0b562f4ec`): the legacy
 * `keylime_create_policy` on upstream's static inputs (`test/fixtures/keylime-tests/`), each output
 * compared with upstream's expected policy after upstream's `normalize_timestamp`.
 *
 * Every phase is mirrored: test1 (no input, `-m /dev/null`); test2 (a log with `ima-sig`
 * entries; merging a second log into it with `-B`, without and with `--ima-buf`, with `-i
 * .builtin_trusted_keys`, with `--keyrings`, with both); test3 (an exclude list, then `-i` twice,
 * then `-A` an EC signature verification key); test4 (an allowlist as input).
 *
 * Upstream compares text (`diff -Z`, or after `jq` reformatting); the mirror compares the parsed
 * JSON, so key order and whitespace are not asserted — the values, arrays in order, are. That
 * holds inside `verification-keys` too, a JSON document in a string: keylime-ts writes it compact
 * with `keyids` first, Python as `{"pubkeys": [...], "keyids": [...]}`; it is compared parsed.
 *
 * @module
 */
import { describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runLegacyCreatePolicy } from '../../src/policy-tools/index.ts'
import { runTool } from '../support/host-evidence.ts'

const DATA = join(import.meta.dir, '../fixtures/keylime-tests/keylime_create_policy-static-data')
const out = mkdtempSync(join(tmpdir(), 'kl-kt-create-policy-'))
const at = (f: string) => join(DATA, f)
const o = (f: string) => join(out, f)

/** A policy's text parsed, `verification-keys` (JSON in a string) included. */
function parsePolicy(text: string): Record<string, unknown> {
  const p = JSON.parse(text) as Record<string, unknown>
  const keys = p['verification-keys']
  if (typeof keys === 'string' && keys !== '') p['verification-keys'] = JSON.parse(keys)
  return p
}

/** `keylime_create_policy <args> -o <tmp>/<name>`, then `normalize_timestamp`: the parsed policy. */
async function createPolicy(name: string, args: string[]): Promise<unknown> {
  await runTool(runLegacyCreatePolicy, [...args, '-o', o(name)])
  const text = readFileSync(o(name), 'utf8')
  return parsePolicy(text.replace(/"timestamp": ?"[^"]*"/g, '"timestamp": "2023-01-01 00:00:00"'))
}

const expected = (f: string): unknown => parsePolicy(readFileSync(at(f), 'utf8'))

describe('keylime-tests functional/keylime_create_policy-static-data', () => {
  test('test1: no input', async () => {
    expect(await createPolicy('test1-output1.json', ['-m', '/dev/null'])).toEqual(
      expected('test1/output1.json'),
    )
  })

  test('test2: a log with ima-sig entries; a second log merged in, ima-buf and keyrings', async () => {
    const log2 = ['-m', at('test2/ascii_runtime_measurements-2')]
    const first = await createPolicy('test2-output1.json', [
      ...['-m', at('test2/ascii_runtime_measurements-1')],
    ])
    expect(first).toEqual(expected('test2/output1.json'))
    const base = ['-B', o('test2-output1.json')]
    // Without --ima-buf the ima-buf entries are not merged.
    expect(await createPolicy('test2-output2.json', [...base, ...log2])).toEqual(
      expected('test2/output1.json'),
    )
    const cases = [
      ['output3.json', ['--ima-buf']],
      ['output4.json', ['-i', '.builtin_trusted_keys', '--ima-buf']],
      ['output5.json', ['-i', '.builtin_trusted_keys', '--keyrings']],
      ['output6.json', ['-i', '.builtin_trusted_keys', '--keyrings', '--ima-buf']],
    ] as const
    for (const [name, extra] of cases) {
      const got = await createPolicy(`test2-${name}`, [...base, ...log2, ...extra])
      expect({ name, got }).toEqual({ name, got: expected(`test2/${name}`) })
    }
  })

  test('test3: an exclude list; keyrings to ignore; an IMA signature verification key', async () => {
    const one = await createPolicy('test3-output1.json', [
      ...['-m', at('test3/ascii_runtime_measurements-1'), '-e', at('test3/exclude-list-1')],
    ])
    expect(one).toEqual(expected('test3/output1.json'))
    const two = await createPolicy('test3-output2.json', [
      ...['-B', o('test3-output1.json'), '-m', '/dev/null'],
      ...['-i', '.builtin_trusted_keys', '-i', 'test123'],
    ])
    expect(two).toEqual(expected('test3/output2.json'))
    const three = await createPolicy('test3-output3.json', [
      ...['-B', o('test3-output2.json'), '-m', '/dev/null', '-A', at('test3/eckey-ecdsa.pem')],
    ])
    expect(three).toEqual(expected('test3/output3.json'))
  })

  test('test4: an allowlist as input', async () => {
    expect(
      await createPolicy('test4-output1.json', ['-m', '/dev/null', '-a', at('test4/allowlist-1')]),
    ).toEqual(expected('test4/output1.json'))
  })
})
