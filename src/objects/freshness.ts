/**
 * Freshness for buckets written behind the gateway (issue 13). Objects are immutable by
 * default; with `revalidate_after` a hit older than that is served at once and revalidated in
 * the background (a conditional GET, once per key at a time); past `revalidate_after +
 * max_stale` a hit waits for it instead; a store that fails leaves the cached copy served
 * (stale-if-error). Large (paged) objects revalidate through their metadata record (a HEAD): a
 * changed version drops every page.
 */
import { pageKey, pagesPrefix, revalidateFlightKey } from '../cache/keys.ts'
import { Singleflight } from '../cache/singleflight.ts'
import type { Cache, CacheHit } from '../cache/types.ts'
import type { Logger } from '../log.ts'
import type { Telemetry } from '../metrics.ts'
import type { GetResult, ObjectMeta, Store } from '../stores/types.ts'
import { typed } from './first-get.ts'
import type { KnownObjects } from './known.ts'
import type { NegativeCache } from './negative.ts'
import { sameVersion } from './versions.ts'

/** One store's freshness settings, in ms; `Infinity` for "never". */
export interface FreshnessPolicy {
  /** A hit older than this is revalidated. */
  revalidateAfter: number
  /** How long past `revalidateAfter` a hit is still served before its revalidation ends. */
  maxStale: number
  /** How long a 404 is remembered; 0: not at all. */
  negativeTtl: number
}

/** The default: objects never change. */
export const IMMUTABLE: FreshnessPolicy = Object.freeze({ revalidateAfter: Infinity, maxStale: Infinity, negativeTtl: 0 })

/** The config keys (ms), global and per store; a store's own keys win one by one. */
export interface FreshnessKeys {
  revalidate_after?: number | undefined
  max_stale?: number | undefined
  negative_ttl?: number | undefined
}

export function policyOf(global: FreshnessKeys, store: FreshnessKeys = {}): FreshnessPolicy {
  const revalidateAfter = store.revalidate_after ?? global.revalidate_after
  const maxStale = store.max_stale ?? global.max_stale
  const negativeTtl = store.negative_ttl ?? global.negative_ttl ?? 0
  if (revalidateAfter === undefined && negativeTtl === 0) return IMMUTABLE
  return { revalidateAfter: revalidateAfter ?? Infinity, maxStale: maxStale ?? Infinity, negativeTtl }
}

/** How a hit stands: serve it, serve it and revalidate in the background, or wait for the revalidation. */
export const FRESH = 0
export const STALE = 1
export const EXPIRED = 2
export type Staleness = typeof FRESH | typeof STALE | typeof EXPIRED

/** A couple of comparisons: the memory-hit path calls this on every hit of a store with freshness on. */
export function stalenessOf(storedAt: number, policy: FreshnessPolicy, now: number): Staleness {
  const age = now - storedAt
  if (!(age > policy.revalidateAfter)) return FRESH
  return age > policy.revalidateAfter + policy.maxStale ? EXPIRED : STALE
}

/**
 * What a revalidation found: `fresh` (304, or the same version: the age restarts), `replaced`
 * (a new version was cached or dropped, or a PUT or purge came meanwhile: look again),
 * `missing` (404: dropped), `error` (the store failed: the cached copy stays).
 */
export type Revalidation = 'fresh' | 'replaced' | 'missing' | 'error'

export interface RevalidatorOptions {
  cache: Cache
  known: KnownObjects
  negative: NegativeCache
  pageSize: number
  now: () => number
  telemetry: Telemetry
  logger: Logger
  /** A 200 with a new version of a whole object: cache it as a fill would (or drop the old copy when too large). */
  adopt(ck: string, store: Store, key: string, got: GetResult): Promise<void>
}

/**
 * After a revalidation of a key failed, the store is not asked again for it for this long:
 * a store that is down (connections refused in a millisecond) would otherwise get one
 * revalidation per key per request. Hits meanwhile are served stale-if-error.
 */
export const RETRY_AFTER_ERROR_MS = 1000
/** Keys whose last revalidation failed, remembered at most (oldest forgotten first). */
const FAILED_KEYS = 10_000
/** Page deletes issued at once. */
const DELETE_BATCH = 64

export class Revalidator {
  readonly #flights = new Singleflight<string, Revalidation>()
  readonly #options: RevalidatorOptions
  /** Cache key → until when (ms) its revalidations are not retried. */
  readonly #failedUntil = new Map<string, number>()

  constructor(options: RevalidatorOptions) {
    this.#options = options
  }

  /**
   * Revalidates a whole cached object with a conditional GET (`If-None-Match` with its ETag),
   * once per key at a time. Never rejects.
   */
  whole(store: Store, key: string, ck: string, hit: CacheHit, policy: FreshnessPolicy): Promise<Revalidation> {
    const { cache, known, negative, telemetry, now } = this.#options
    if (this.#holdingOff(ck)) return Promise.resolve('error')
    return this.#flights.run(revalidateFlightKey(ck), async (isCurrent) => {
      const prefer = hit.meta.servedBy ?? store.id
      let got
      try {
        // Without an ETag there is nothing to ask with: a plain GET, compared by size and date.
        got = hit.meta.etag !== undefined ? await store.get(key, { ifNoneMatch: hit.meta.etag, prefer, op: 'revalidate' }) : await store.get(key, { prefer, op: 'revalidate' })
      } catch (error) {
        return this.#failed(ck, store, error)
      }
      if (!isCurrent()) {
        if (got && !('notModified' in got)) got.body.destroy()
        return 'replaced'
      }
      if (got === null) {
        await Promise.all([cache.delete(ck), known.forget(ck)])
        telemetry.revalidation('missing')
        // A PUT that ended during the awaits above: its object exists, no 404 is to be remembered.
        if (!isCurrent()) return 'replaced'
        negative.remember(ck, policy.negativeTtl)
        return 'missing'
      }
      if ('notModified' in got || sameVersion(got.meta, hit.meta)) {
        if (!('notModified' in got)) got.body.destroy()
        cache.refresh?.(ck, hit.meta, now())
        telemetry.revalidation('not_modified')
        return 'fresh'
      }
      try {
        await this.#options.adopt(ck, store, key, got)
      } catch (error) {
        got.body.destroy()
        return this.#failed(ck, store, error)
      }
      telemetry.revalidation('changed')
      return 'replaced'
    }).value
  }

  /**
   * Revalidates a large object through its metadata record (a HEAD): the same version
   * rewrites the record (its age restarts), another drops every page of the old one and
   * records the new version.
   */
  record(store: Store, key: string, ck: string, meta: ObjectMeta, policy: FreshnessPolicy): Promise<Revalidation> {
    const { known, negative, telemetry } = this.#options
    if (this.#holdingOff(ck)) return Promise.resolve('error')
    return this.#flights.run(revalidateFlightKey(ck), async (isCurrent) => {
      let found
      try {
        found = await store.head(key)
      } catch (error) {
        return this.#failed(ck, store, error)
      }
      if (!isCurrent()) return 'replaced'
      if (found && sameVersion(found, meta)) {
        known.remember(ck, meta)
        telemetry.revalidation('not_modified')
        return 'fresh'
      }
      await Promise.all([this.#dropPages(ck, meta), known.forget(ck)])
      if (!found) {
        telemetry.revalidation('missing')
        // A PUT that ended while the pages were dropped: its object exists, no 404 is to be remembered.
        if (!isCurrent()) return 'replaced'
        negative.remember(ck, policy.negativeTtl)
        return 'missing'
      }
      if (isCurrent()) known.remember(ck, typed(key, found))
      telemetry.revalidation('changed')
      return 'replaced'
    }).value
  }

  /** A PUT or purge: a revalidation in flight must not act on what it finds. */
  forget(ck: string): void {
    this.#flights.forget(revalidateFlightKey(ck))
    this.#failedUntil.delete(ck)
  }

  /** A purge by prefix: every revalidation of a key under it is detached (`prefix` is a cache key prefix). */
  forgetPrefix(prefix: string): void {
    this.#flights.forgetWhere((flight) => flight.startsWith(prefix))
    for (const ck of [...this.#failedUntil.keys()]) if (ck.startsWith(prefix)) this.#failedUntil.delete(ck)
  }

  /** Revalidations in flight (tests wait for them). */
  running(): Promise<Revalidation>[] {
    return this.#flights.running()
  }

  /** True while a failed revalidation of `ck` is not to be retried. */
  #holdingOff(ck: string): boolean {
    if (this.#failedUntil.size === 0) return false
    const until = this.#failedUntil.get(ck)
    if (until === undefined) return false
    if (this.#options.now() < until) return true
    this.#failedUntil.delete(ck)
    return false
  }

  #failed(ck: string, store: Store, error: unknown): Revalidation {
    this.#failedUntil.delete(ck)
    this.#failedUntil.set(ck, this.#options.now() + RETRY_AFTER_ERROR_MS)
    if (this.#failedUntil.size > FAILED_KEYS) this.#failedUntil.delete(this.#failedUntil.keys().next().value!)
    this.#options.telemetry.revalidation('error')
    this.#options.logger.warn('revalidation failed; the cached copy is kept', { store: store.id, err: error })
    return 'error'
  }

  /**
   * Deletes the pages of `ck` that are cached, listed by key: deleting every page number of a
   * 16 GiB object (a million 16 KiB pages, nearly all never cached) blocked the event loop for
   * seconds. Only a tier that cannot list its keys gets every page number deleted.
   */
  async #dropPages(ck: string, meta: ObjectMeta): Promise<void> {
    const { cache, pageSize } = this.#options
    if (cache.keys) return this.#deleteAll(cache.keys(pagesPrefix(ck)))
    const pages = pageSize > 0 ? Math.ceil(meta.size / pageSize) : 0
    for (let index = 0; index < pages; index += DELETE_BATCH) {
      await this.#deleteAll(Array.from({ length: Math.min(pages, index + DELETE_BATCH) - index }, (_, i) => pageKey(ck, index + i)))
    }
  }

  async #deleteAll(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) await Promise.all(keys.slice(i, i + DELETE_BATCH).map((key) => this.#options.cache.delete(key)))
  }
}
