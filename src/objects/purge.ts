/**
 * Purge (`POST /_admin/purge`): drops what is cached of one object, or of every object under a
 * key prefix, in every tier: whole entries, pages, metadata records, negative entries. The key
 * layout (cache/keys.ts) puts every entry of an object under its cache key, so a prefix of
 * cache keys finds them all.
 */
import { cacheKey, isEntryOf, metaRecordKey } from '../cache/keys.ts'
import type { Cache } from '../cache/types.ts'
import type { KnownObjects } from './known.ts'
import type { NegativeCache } from './negative.ts'

/** Deletes issued at once: a prefix may name millions of entries. */
const DELETE_BATCH = 256

export interface PurgeDeps {
  cache: Cache
  known: KnownObjects
  negative: NegativeCache
  /** Detaches fills, HEADs and revalidations in flight for one object, so they cache nothing. */
  detach(ck: string): void
  /** The same for every object under a cache key prefix, whether anything of it is cached or not. */
  detachPrefix(prefix: string): void
}

export function createPurge(deps: PurgeDeps) {
  const { cache, known, negative } = deps

  async function dropAll(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) await Promise.all(keys.slice(i, i + DELETE_BATCH).map((key) => cache.delete(key)))
  }

  return async function purge(bucket: string, what: { path: string } | { prefix: string }): Promise<number> {
    if ('path' in what) {
      const ck = cacheKey(bucket, what.path)
      deps.detach(ck)
      const listed = cache.keys?.(ck).filter((key) => isEntryOf(ck, key))
      // The object and its record are deleted even when not listed: a tier that cannot list its
      // keys, or a write of them that lands later, must not outlive the purge.
      const keys = [...new Set([...(listed ?? []), ck, metaRecordKey(ck)])]
      await dropAll(keys)
      await known.forget(ck)
      return (listed ?? keys).length + (negative.forget(ck) ? 1 : 0)
    }
    const prefix = cacheKey(bucket, what.prefix)
    // Before listing: a fill in flight for an object not cached yet would cache old bytes after the purge.
    deps.detachPrefix(prefix)
    const keys = cache.keys?.(prefix) ?? []
    await dropAll(keys)
    known.forgetPrefix(prefix)
    return keys.length + negative.forgetPrefix(prefix)
  }
}
