import { expect, test } from 'bun:test'
import { chooseVersion } from './negotiate-version.ts'

test('the newest common version is used', () => {
  expect(chooseVersion({ supported_versions: ['2.1', '2.3', '9.9'] }, '2.6', false)).toEqual({
    kind: 'use',
    version: '2.3',
  })
  expect(chooseVersion({ supported_version: '2.2' }, '2.6', false)).toEqual({
    kind: 'use',
    version: '2.2',
  })
})

test('no common version, or hostile input, gives none', () => {
  expect(chooseVersion({ supported_versions: ['3.0'] }, '2.6', false)).toEqual({ kind: 'none' })
  expect(chooseVersion({ supported_versions: [{ toString: 1 }] }, '2.6', false)).toEqual({
    kind: 'none',
  })
  expect(chooseVersion(null, '2.6', false)).toEqual({ kind: 'none' })
  expect(chooseVersion('2.6', '2.6', false)).toEqual({ kind: 'none' })
})

test('a downgrade is refused once the agent passed', () => {
  const offer = { supported_versions: ['2.1'] }
  expect(chooseVersion(offer, '2.4', true)).toEqual({ kind: 'downgrade', version: '2.1' })
  expect(chooseVersion(offer, '2.4', false)).toEqual({ kind: 'use', version: '2.1' })
  expect(chooseVersion({ supported_versions: ['2.4'] }, '2.4', true)).toEqual({
    kind: 'use',
    version: '2.4',
  })
})
