/**
 * Differential test: parsePythonLiteral against CPython's ast.literal_eval on generated list
 * literals (what Keylime's getlist reads). Skips (with a printed reason) without python3.
 */
import { expect, test } from 'bun:test'
import { parsePythonLiteral } from './parse-python-literal.ts'

const python = Bun.which('python3')
if (!python) console.log('skipping literal_eval differential test: python3 not found')

const PY = `
import ast, json, sys
out = []
for text in json.load(sys.stdin):
    try:
        v = ast.literal_eval(text)
        out.append({'ok': True, 'value': v} if isinstance(v, (list, str)) else {'ok': 'other'})
    except Exception:
        out.append({'ok': False})
print(json.dumps(out))
`

test.skipIf(!python)('parsePythonLiteral agrees with ast.literal_eval on list-like input', () => {
  let seed = 99
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed % n
  }
  const pieces = [
    '[',
    ']',
    ',',
    ' ',
    "'a'",
    '"b"',
    "'it\\'s'",
    '"\\n"',
    "r'\\d'",
    'agent',
    '{',
    '}',
    ':',
    '"k"',
    '1',
    '-2',
    '3.5',
    'True',
    'None',
    "'",
    '"',
    '\\',
  ]
  const cases: string[] = []
  for (let i = 0; i < 3000; i++) {
    let text = rand(2) === 0 ? '[' : ''
    const len = rand(10)
    for (let j = 0; j < len; j++) text += pieces[rand(pieces.length)]
    cases.push(text + (rand(3) === 0 ? '' : ']'))
  }
  const proc = Bun.spawnSync([python as string, '-c', PY], {
    stdin: Buffer.from(JSON.stringify(cases)),
  })
  expect(proc.exitCode).toBe(0)
  const expected = JSON.parse(proc.stdout.toString()) as {
    ok: boolean | 'other'
    value?: unknown
  }[]
  let agreedOk = 0
  for (const [i, text] of cases.entries()) {
    const want = expected[i]
    if (want === undefined || want.ok === 'other') continue // tuples, numbers, dicts at top level
    const got = parsePythonLiteral(text)
    if (
      got.ok !== want.ok ||
      (got.ok && JSON.stringify(got.value) !== JSON.stringify(want.value))
    ) {
      throw new Error(
        `mismatch on ${JSON.stringify(text)}: got ${JSON.stringify(got)}, python ${JSON.stringify(want)}`,
      )
    }
    if (got.ok) agreedOk++
  }
  expect(agreedOk).toBeGreaterThan(50)
})
