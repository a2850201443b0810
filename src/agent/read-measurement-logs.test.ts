/**
 * The logs stay readable after the agent drops privileges: the IMA list's descriptor opened
 * before `run_as` keeps serving (new lines too), and the UEFI log read at start is served when a
 * re-read fails. Tests run as root, where permissions cannot be taken away, so "unreadable" is
 * played by removing the path.
 *
 * @module
 */
import { afterAll, expect, test } from 'bun:test'
import { appendFileSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ImaListFile, openMeasurementLogs } from './read-measurement-logs.ts'

const dir = mkdtempSync(join(tmpdir(), 'kl-logs-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

test('openMeasurementLogs: both logs keep being served once their paths are gone', () => {
  const imaList = join(dir, 'ima')
  const measuredBootLog = join(dir, 'uefi')
  writeFileSync(imaList, 'a\nb\n')
  writeFileSync(measuredBootLog, Uint8Array.of(9, 8, 7))
  const logs = openMeasurementLogs({ imaList, measuredBootLog })
  appendFileSync(imaList, 'c\n')
  unlinkSync(imaList)
  unlinkSync(measuredBootLog)
  expect(logs.ima.entryCount()).toBe(3)
  expect(logs.ima.entriesFrom(1)).toEqual({ text: 'b\nc\n', count: 2 })
  expect([...(logs.uefiLog() ?? [])]).toEqual([9, 8, 7])
  logs.ima.close()
})

test('ImaListFile: offsets past the end give no entries; no file gives undefined', () => {
  const path = join(dir, 'ima2')
  writeFileSync(path, 'x 1\ny 2\n')
  const list = new ImaListFile(path)
  expect(list.entriesFrom(2)).toEqual({ text: '', count: 0 })
  expect(list.entriesFrom(9)).toEqual({ text: '', count: 0 })
  expect(list.fromEntry(9)).toEqual({ text: 'x 1\ny 2\n', entry: 0 }) // pull mode restarts at 0
  expect(new ImaListFile(join(dir, 'none')).entryCount()).toBeUndefined()
})
