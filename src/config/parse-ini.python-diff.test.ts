/**
 * Differential test: parseIni against CPython's own configparser.RawConfigParser on generated
 * inputs. Skips (with a printed reason) when python3 is not installed.
 */
import { expect, test } from 'bun:test'
import { ConfigError } from './errors.ts'
import { parseIni } from './parse-ini.ts'

const python = Bun.which('python3')
if (!python) console.log('skipping RawConfigParser differential test: python3 not found')

const PY = `
import configparser, json, sys
out = []
for text in json.load(sys.stdin):
    c = configparser.RawConfigParser()
    try:
        c.read_string(text, 'x.conf')
        secs = {s: {k: v for k, v in c._sections[s].items()} for s in c.sections()}
        out.append({'ok': True, 'defaults': dict(c._defaults), 'sections': secs})
    except configparser.Error:
        out.append({'ok': False})
print(json.dumps(out))
`

test.skipIf(!python)('parseIni agrees with Python RawConfigParser on generated files', () => {
  let seed = 42
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T
  const indents = ['', '', '', ' ', '  ', '\t', '    ']
  const names = ['a', 'B', 'key', 'Key', 'port', 'a b', 'x[y]']
  const values = ['', '1', 'v', 'x # y', 'v;w', '"q"', "'q'", 'a=b', 'u:v', '[1, 2]']
  const line = (): string => {
    switch (rand(8)) {
      case 0:
        return `${pick(indents)}[${pick(['s', 't', 'DEFAULT', 'S', 's] z', ''])}]`
      case 1:
        return ''
      case 2:
        return `${pick(indents)}${pick(['#', ';'])} ${pick(values)}`
      case 3:
        return `${pick(indents)}${pick(values)}`
      default:
        return `${pick(indents)}${pick(names)}${pick([' = ', '=', ': ', ':', ' : '])}${pick(values)}`
    }
  }
  const cases: string[] = []
  for (let i = 0; i < 2000; i++) {
    const lines = ['[s]']
    const n = rand(12)
    for (let j = 0; j < n; j++) lines.push(line())
    if (rand(10) === 0) lines.shift()
    cases.push(lines.join(pick(['\n', '\r\n'])) + pick(['', '\n']))
  }
  const proc = Bun.spawnSync([python as string, '-c', PY], {
    stdin: Buffer.from(JSON.stringify(cases)),
  })
  expect(proc.exitCode).toBe(0)
  const expected = JSON.parse(proc.stdout.toString()) as (
    | {
        ok: true
        defaults: Record<string, string>
        sections: Record<string, Record<string, string>>
      }
    | { ok: false }
  )[]
  let agreedOk = 0
  for (const [i, text] of cases.entries()) {
    const want = expected[i]
    let got: typeof want
    try {
      const store = parseIni(text, 'x.conf')
      const values = (m: Map<string, { value: string }>) =>
        Object.fromEntries([...m].map(([k, e]) => [k, e.value]))
      got = {
        ok: true,
        defaults: values(store.defaults),
        sections: Object.fromEntries([...store.sections].map(([s, m]) => [s, values(m)])),
      }
      agreedOk++
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError)
      got = { ok: false }
    }
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(
        `mismatch on ${JSON.stringify(text)}: got ${JSON.stringify(got)}, python ${JSON.stringify(want)}`,
      )
    }
  }
  expect(agreedOk).toBeGreaterThan(200)
  expect(agreedOk).toBeLessThan(cases.length)
})
