/**
 * Hits and known metadata as their freshness allows (freshness.ts): the read path's async
 * lookups go through here; the synchronous memory-hit path (read.ts `openInMemory`) makes the
 * same decision inline.
 */
import type { Cache, CacheHit } from '../cache/types.ts'
import type { Telemetry } from '../metrics.ts'
import type { Store } from '../stores/types.ts'
import { FRESH, type FreshnessPolicy, type Revalidator, STALE, stalenessOf } from './freshness.ts'
import type { KnownObjects } from './known.ts'
import { type ReadVersion, fromDisk, fromMemory } from './opened.ts'
import type { FreshnessStatus, OpenObject } from './types.ts'

export interface FreshReadsOptions {
  cache: Cache
  known: KnownObjects
  revalidator: Revalidator
  policyFor(storeId: string): FreshnessPolicy
  /** Some store revalidates: only then is an age looked at. */
  revalidates: boolean
  now: () => number
  telemetry: Telemetry
  maxObjectSize: number
  pageSize: number
  /** Reads of a disk hit whose file went away: from the store, of the same version only. */
  versionOf(store: Store, key: string): ReadVersion
}

export function createFreshReads(options: FreshReadsOptions) {
  const { cache, known, revalidator, policyFor, revalidates, now, telemetry, maxObjectSize, pageSize, versionOf } = options

  /** Starts a background revalidation of a stale hit (its result is counted and logged there). */
  function revalidateLater(store: Store, key: string, ck: string, hit: CacheHit, policy: FreshnessPolicy): void {
    void revalidator.whole(store, key, ck, hit, policy)
  }

  const opened = (store: Store, key: string, hit: CacheHit, freshness?: FreshnessStatus): OpenObject => {
    const object = hit.tier === 'memory' ? fromMemory(hit) : fromDisk(hit, versionOf(store, key))
    object.freshness = freshness
    return object
  }

  /**
   * A hit as its freshness allows: fresh, or stale (served, revalidated behind it), or past
   * `max_stale` (served once the revalidation ends: confirmed, replaced, gone, or the store
   * failed and the copy is served anyway). Undefined: look again (a new version or a PUT).
   */
  async function serveHit(store: Store, key: string, ck: string, hit: CacheHit): Promise<OpenObject | null | undefined> {
    if (!revalidates) return opened(store, key, hit)
    const policy = policyFor(store.id)
    const state = stalenessOf(hit.storedAt, policy, now())
    if (state === FRESH) return opened(store, key, hit)
    if (state === STALE) {
      revalidateLater(store, key, ck, hit, policy)
      return opened(store, key, hit, 'stale')
    }
    const result = await revalidator.whole(store, key, ck, hit, policy)
    if (result === 'fresh') return opened(store, key, hit, 'revalidated')
    if (result === 'missing') return null
    if (result === 'error') {
      telemetry.staleIfError()
      return opened(store, key, hit, 'stale-if-error')
    }
    const replaced = await cache.get(ck)
    return replaced && opened(store, key, replaced, 'replaced')
  }

  /** What is known of a large object, revalidated through its record when it is stale. */
  async function recallFresh(store: Store, ck: string, key: string) {
    const recalled = await known.recall(ck)
    if (!recalled || !revalidates || recalled.meta.size <= maxObjectSize || pageSize === 0) return recalled
    const policy = policyFor(store.id)
    const state = stalenessOf(recalled.storedAt, policy, now())
    if (state === FRESH) return recalled
    const revalidation = revalidator.record(store, key, ck, recalled.meta, policy)
    if (state === STALE) return recalled
    const result = await revalidation
    if (result === 'fresh' || result === 'error') return recalled
    // Gone (a 404 is remembered when negative caching is on), or changed: the new version's record.
    return result === 'replaced' ? known.recall(ck) : undefined
  }

  return { serveHit, recallFresh, revalidateLater }
}
