/**
 * `--ramdisk-dir`: digests of the files inside the initramfs images of a directory such as
 * `/boot` (upstream `get_initrds_digests` / `list_initrds` in
 * `keylime/policy/create_runtime_policy.py`).
 *
 * An image is every regular file (symlinks followed) directly in the directory whose name starts
 * with `initr` (`initrd.img-6.1.0-13-amd64`, `initramfs-6.8.9-300.fc40.x86_64.img`, `initrd`). Each
 * is unpacked in memory ({@link readInitramfs}); its files are keyed by their path from the
 * initramfs root (`/usr/bin/foo`), spaces replaced by `_` as IMA logs them, and hashed with the
 * policy's algorithm. As upstream, a bad image fails the whole run; the error names the image.
 *
 * @module
 */

import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ImaError, isImaError } from '../ima/errors.ts'
import { type InitramfsLimits, initramfsFiles, readInitramfs } from './read-initramfs.ts'

/** Options of {@link ramdiskDigests}. */
export interface RamdiskDigestsOptions extends InitramfsLimits {
  /** Progress sink (one line per image). */
  progress?: (msg: string) => void
  /** Largest image read (default 1 GiB). */
  maxImageBytes?: number
}

/** The initramfs images of `dir` (upstream `list_initrds`), sorted by name. */
export function listInitramfsImages(dir: string): string[] {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch (e) {
    throw new ImaError(
      'ERR_IMA_TOOL',
      `cannot read ramdisk directory ${dir}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
      { cause: e },
    )
  }
  return names
    .filter((n) => n.startsWith('initr'))
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => {
      try {
        return statSync(p).isFile()
      } catch {
        return false
      }
    })
}

/**
 * Adds `path → [digest]` for every file of every initramfs image in `dir` to `into`.
 *
 * @throws {ImaError} `ERR_IMA_TOOL` (unreadable directory or image), and the codes of
 *   {@link readInitramfs} with the image path prefixed to the message.
 */
export function ramdiskDigests(
  dir: string,
  algo: string,
  into: Record<string, string[]> = {},
  o: RamdiskDigestsOptions = {},
): Record<string, string[]> {
  const images = listInitramfsImages(dir)
  if (images.length === 0) o.progress?.(`no initramfs images (initr*) in ${dir}`)
  const maxImage = o.maxImageBytes ?? 1 << 30
  for (const image of images) {
    let bytes: Uint8Array
    try {
      const size = statSync(image).size
      if (size > maxImage)
        throw new ImaError('ERR_IMA_LIMIT', `${image}: ${size} bytes exceeds ${maxImage}`)
      bytes = readFileSync(image)
    } catch (e) {
      if (isImaError(e)) throw e
      throw new ImaError('ERR_IMA_TOOL', `cannot read initramfs ${image}`, { cause: e })
    }
    let files: Map<string, Uint8Array>
    let layout: string
    try {
      const segments = readInitramfs(bytes, o)
      layout = segments.map((s) => s.compression).join('+')
      files = initramfsFiles(segments)
    } catch (e) {
      if (isImaError(e)) throw new ImaError(e.code, `${image}: ${e.message}`, { cause: e })
      throw e
    }
    for (const [path, data] of files) {
      const key = path.replaceAll(' ', '_')
      const digest = new Bun.CryptoHasher(algo as 'sha256').update(data).digest('hex')
      const l = into[key]
      if (l === undefined) into[key] = [digest]
      else if (!l.includes(digest)) l.push(digest)
    }
    o.progress?.(`${image}: ${files.size} files hashed (${layout})`)
  }
  return into
}
