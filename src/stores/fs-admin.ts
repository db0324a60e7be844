import type { Dirent } from 'node:fs'
import * as fsp from 'node:fs/promises'
import path from 'node:path'
import { type FsContext, validatorsOf } from './fs-context.ts'
import { META_DIR, isInside } from './fs-root.ts'
import { validateKey } from './key.ts'
import { checkMaxKeys, compareKeys, listStart, pageOf } from './list.ts'
import type { ListEntry, ListOptions, ListResult, ObjectMeta, StoreAdmin } from './types.ts'

/** `ENOENT`/`ENOTDIR`: the path is not there (a missing key, or a file where a directory was expected). */
function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ENOTDIR'
}

/**
 * list, delete and copy of the fs store.
 *
 * Listing walks the tree depth-first, each directory's entries sorted as their keys sort (a
 * directory `a` as `a/`): the walk yields keys in UTF-8 binary order without sorting the whole
 * tree, and skips whole directories that lie before the page's start. Symbolic links are not
 * listed (`get` follows one that stays inside the root); neither is `.cachegate-meta/`.
 * With delimiter `/`, a directory that is one common prefix is walked only to its first key (an
 * empty directory is no prefix); with another delimiter the whole tree under the prefix is.
 * Continuation token: base64url of the page's last key or common prefix.
 */
export function fsAdmin(context: FsContext): Pick<StoreAdmin, 'list' | 'delete' | 'copy'> {
  const { root } = context

  async function* walk(dir: string, keyPrefix: string, prefix: string, after: string | undefined, signal: AbortSignal | undefined, delimiter?: string): AsyncGenerator<ListEntry> {
    signal?.throwIfAborted()
    let entries: Dirent[]
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true })
    } catch (error) {
      if (isMissing(error)) return
      throw error
    }
    const named = entries
      .filter((entry) => !(keyPrefix === '' && entry.name === META_DIR) && (entry.isFile() || entry.isDirectory()))
      .map((entry) => ({ entry, key: keyPrefix + entry.name + (entry.isDirectory() ? '/' : '') }))
      // Under the prefix, or (a directory) on the way to it.
      .filter(({ key }) => key.startsWith(prefix) || prefix.startsWith(key))
      .sort((a, b) => compareKeys(a.key, b.key))
    for (const { entry, key } of named) {
      if (entry.isDirectory()) {
        // Every key below starts with `key`: all of them sort before `after` unless it is below too.
        if (after !== undefined && compareKeys(key, after) < 0 && !after.startsWith(key)) continue
        const below = walk(path.join(dir, entry.name), key, prefix, after, signal, delimiter)
        // With delimiter `/`, a directory right under the prefix is one common prefix: one key
        // below it says it is not empty, and the rest would only be grouped into it again.
        if (delimiter === '/' && key.length > prefix.length && key.indexOf('/', prefix.length) === key.length - 1) {
          for await (const first of below) {
            yield first
            break
          }
        } else {
          yield* below
        }
        continue
      }
      if (after !== undefined && compareKeys(key, after) <= 0) continue
      let stat
      try {
        stat = await fsp.stat(path.join(dir, entry.name))
      } catch (error) {
        if (isMissing(error)) continue // deleted while we walk
        throw error
      }
      yield { key, ...validatorsOf(stat) }
    }
  }

  async function list(options: ListOptions): Promise<ListResult> {
    checkMaxKeys(options.maxKeys)
    const prefix = options.prefix ?? ''
    const after = listStart(options)
    // Start at the deepest directory the prefix names; a prefix no key can have lists nothing.
    const dirPart = prefix.slice(0, prefix.lastIndexOf('/') + 1)
    const empty = { objects: [], commonPrefixes: [], isTruncated: false }
    if (dirPart !== '') {
      try {
        validateKey(dirPart.slice(0, -1))
      } catch {
        return empty
      }
      if (dirPart === `${META_DIR}/` || dirPart.startsWith(`${META_DIR}/`)) return empty
    }
    try {
      const base = await root.resolved()
      const start = path.join(base, dirPart)
      const real = await fsp.realpath(start).catch((error: unknown) => {
        if (isMissing(error)) return null
        throw error
      })
      if (real === null || !isInside(real, base)) return empty
      return await pageOf(walk(start, dirPart, prefix, after, options.signal, options.delimiter), options, after)
    } catch (error) {
      context.fail('list', prefix, error)
    }
  }

  async function remove(key: string): Promise<void> {
    try {
      const { file, sidecar } = await root.locate(key)
      const base = await root.resolved()
      let parent: string
      try {
        parent = await fsp.realpath(path.dirname(file))
      } catch (error) {
        if (isMissing(error)) return
        throw error
      }
      if (!isInside(parent, base)) return
      const target = path.join(parent, path.basename(file))
      const stat = await fsp.lstat(target).catch((error: unknown) => {
        if (isMissing(error)) return null
        throw error
      })
      // A directory is no object (S3: deleting a key that is not there succeeds).
      if (stat === null || stat.isDirectory()) return
      await fsp.unlink(target)
      await fsp.unlink(sidecar).catch((error: unknown) => {
        if (!isMissing(error)) throw error
      })
      // Empty directories left behind would show as nothing but cost every listing a visit.
      for (let dir = parent; dir !== base && isInside(dir, base); dir = path.dirname(dir)) {
        try {
          await fsp.rmdir(dir)
        } catch {
          break // not empty (or raced by a writer): it stays
        }
      }
    } catch (error) {
      context.fail('delete', key, error)
    }
  }

  async function copy(source: string, destination: string, options: { contentType?: string; signal?: AbortSignal } = {}): Promise<ObjectMeta | null> {
    await root.locate(destination)
    let tmp: string | undefined
    try {
      const { file } = await root.locate(source)
      const real = await root.realInside(file)
      if (real === null) return null
      const meta = await context.head(source)
      if (meta === null) return null
      options.signal?.throwIfAborted()
      tmp = await context.tmpFile()
      // copyFile streams in the kernel (or clones the extents on a filesystem that can).
      await fsp.copyFile(real, tmp, fsp.constants.COPYFILE_EXCL | fsp.constants.COPYFILE_FICLONE)
      const handle = await fsp.open(tmp, 'r+')
      try {
        await handle.sync()
      } finally {
        await handle.close()
      }
      const copied = await context.install(destination, tmp, options.contentType ?? meta.contentType)
      tmp = undefined
      return copied
    } catch (error) {
      if (tmp !== undefined) await fsp.unlink(tmp).catch(() => {})
      if (isMissing(error)) return null // the source went away while we copied it
      context.fail('copy', source, error)
    }
  }

  return { list, delete: remove, copy }
}
