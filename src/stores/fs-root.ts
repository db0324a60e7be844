import * as fsp from 'node:fs/promises'
import path from 'node:path'
import { InvalidKeyError } from '../errors.ts'
import { validateKey } from './key.ts'

/**
 * Sidecar metadata, temp files and multipart parts live here, inside the root, so renames stay
 * atomic. No key can name it (`locate` refuses it) and listings skip it.
 */
export const META_DIR = '.cachegate-meta'

/** `real` is `base` itself or below it (both already resolved by realpath). */
export function isInside(real: string, base: string): boolean {
  return real === base || real.startsWith(base + path.sep)
}

/**
 * Where an fs store's keys live on disk, and the checks that keep every key inside its root:
 * dot segments are refused up front (validateKey), symlinks are resolved and checked, and a
 * PUT's directories are checked before any is created.
 */
export class FsRoot {
  readonly #root: string
  #real: string | undefined

  constructor(root: string) {
    this.#root = path.resolve(root)
  }

  /** The root's real path (created if missing), resolved once. */
  async resolved(): Promise<string> {
    if (this.#real === undefined) {
      await fsp.mkdir(this.#root, { recursive: true })
      this.#real = await fsp.realpath(this.#root)
    }
    return this.#real
  }

  /** Maps a key to a path under the root, refusing anything that escapes it. */
  async locate(key: string): Promise<{ file: string; sidecar: string }> {
    validateKey(key)
    if (key === META_DIR || key.startsWith(`${META_DIR}/`)) throw new InvalidKeyError(`keys under ${META_DIR}/ are reserved by the fs store`)
    const base = await this.resolved()
    return { file: path.join(base, key), sidecar: this.sidecarOf(base, key) }
  }

  /** Resolves symlinks and checks the real target is still inside the root. */
  async realInside(file: string): Promise<string | null> {
    const base = await this.resolved()
    let real: string
    try {
      real = await fsp.realpath(file)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') return null
      throw error
    }
    if (!real.startsWith(base + path.sep)) throw new InvalidKeyError('object key resolves outside the store root')
    return real
  }

  /**
   * Walks up from `dir` to the deepest part that exists and checks its real path is inside the
   * root. Creates nothing. A symlink that exists but resolves nowhere (dangling) is refused:
   * mkdir would follow it.
   */
  async checkDeepestAncestor(dir: string): Promise<void> {
    const base = await this.resolved()
    for (let probe = dir; ; probe = path.dirname(probe)) {
      let real: string
      try {
        real = await fsp.realpath(probe)
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error
        if (code === 'ENOENT' && (await fsp.lstat(probe).catch(() => null))?.isSymbolicLink()) {
          throw new InvalidKeyError('object key passes through a symlink that does not resolve')
        }
        if (probe === base || path.dirname(probe) === probe) throw error
        continue
      }
      if (!isInside(real, base)) throw new InvalidKeyError('object key resolves outside the store root')
      return
    }
  }

  /** The parts of a multipart upload: `.cachegate-meta/multipart/<uploadId>/`. */
  multipartDir(base: string, uploadId: string): string {
    return path.join(base, META_DIR, 'multipart', uploadId)
  }

  /** The sidecar of `key` (its content type). */
  sidecarOf(base: string, key: string): string {
    return path.join(base, META_DIR, 'meta', `${key}.json`)
  }

  /** Where uploads are written before they are renamed into place. */
  tmpDir(base: string): string {
    return path.join(base, META_DIR, 'tmp')
  }
}
