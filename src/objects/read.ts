import type { Readable } from 'node:stream'
import { cacheKey } from '../cache/keys.ts'
import { Singleflight } from '../cache/singleflight.ts'
import type { Cache } from '../cache/types.ts'
import { UpstreamError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { CacheResult, Telemetry } from '../metrics.ts'
import type { ByteRange, GetResult, ObjectMeta, Store } from '../stores/types.ts'
import { type Outcome, firstGet, settle, typed } from './first-get.ts'
import { createFreshReads } from './fresh-reads.ts'
import { EXPIRED, type FreshnessPolicy, Revalidator, STALE, stalenessOf } from './freshness.ts'
import type { KnownObjects } from './known.ts'
import type { NegativeCache } from './negative.ts'
import { type ReadVersion, direct, fromFill, fromMemory, paged, passThrough } from './opened.ts'
import { createPager } from './pages.ts'
import type { FreshnessStatus, ObjectService, OpenObject } from './types.ts'
import type { Verifier } from './verify.ts'
import { sameVersion } from './versions.ts'

export interface ReadPathOptions {
  cache: Cache
  known: KnownObjects
  maxObjectSize: number
  /** 0: objects over `maxObjectSize` are streamed through, never paged. */
  pageSize: number
  readAhead: number
  telemetry: Telemetry
  logger: Logger
  /** Clock (ms since epoch) for the age of hits; the cache's stored-at times use the same one. */
  now: () => number
  /** Each store's freshness (freshness.ts); `IMMUTABLE` when nothing is configured. */
  policyFor(storeId: string): FreshnessPolicy
  /** Some store revalidates: only then is a hit's age looked at. */
  revalidates: boolean
  negative: NegativeCache
  verifier: Verifier
  /** `cache.verify_only`: every read goes to the store; hits are only compared with it. */
  verifyOnly: boolean
}

/**
 * The read path: lookup (memory, disk) → what is known of the object's size → one flight per
 * key (singleflight) that fills the cache, or, for objects over `max_object_size`, a paged or
 * pass-through read. Counts each request's cache result once, from its object's `source`.
 */
export function createReadPath(options: ReadPathOptions) {
  const { cache, known, maxObjectSize, pageSize, telemetry, logger, now, policyFor, revalidates, negative, verifier, verifyOnly } = options
  const fills = new Singleflight<string, Outcome>()
  const heads = new Singleflight<string, ObjectMeta | null>()

  /** A GET of `key` (or of one range of it) that fails unless the store still has version `meta`. */
  async function readVersion(store: Store, key: string, meta: ObjectMeta, range?: ByteRange): Promise<Readable> {
    const got = await store.get(key, { range, prefer: meta.servedBy ?? store.id })
    if (!got || !sameVersion(got.meta, meta)) {
      got?.body.destroy()
      // Forget the old version's size, or every later ranged read would fail the same way.
      await known.forget(cacheKey(store.id, key))
      throw new UpstreamError(store.id, 'server', 'object changed upstream during the read')
    }
    return got.body
  }
  const versionOf = (store: Store, key: string): ReadVersion => (meta, range) => readVersion(store, key, meta, range)

  const pager = createPager({
    cache,
    pageSize: pageSize || 1,
    readAhead: options.readAhead,
    readExact: readVersion,
    onChanged: (ck) => known.forget(ck),
    onBodyError(store, error) {
      telemetry.upstreamError(store.id, 'get-page-body', error instanceof UpstreamError ? error.kind : 'io')
      logger.warn('upstream page body failed mid-read; not cached', { store: store.id, err: error })
    },
  })

  function pagedObject(store: Store, key: string, ck: string, meta: ObjectMeta, method: string, preset?: CacheResult): OpenObject {
    return paged(
      meta,
      {
        plan: (ranges) => pager.plan(ck, meta, ranges),
        read: (range, mayFetch) => pager.read(store, key, ck, meta, range, mayFetch),
        count: (result) => telemetry.cacheResult(method, result),
      },
      preset,
    )
  }

  /** The object's first GET; the flight is current until a PUT detaches it (then it caches nothing). */
  function fillOnce(ck: string, store: Store, key: string) {
    return fills.run(
      ck,
      (isCurrent) => firstGet({ options, ck, store, key, isCurrent }),
      (outcome) => (outcome.kind === 'fill' ? outcome.done : undefined),
    )
  }

  /** HEAD upstream, once for concurrent callers; remembers the answer unless a PUT came meanwhile. */
  function headOnce(ck: string, store: Store, key: string): Promise<ObjectMeta | null> {
    return heads.run(ck, async (isCurrent) => {
      const found = await store.head(key)
      const meta = found && typed(key, found)
      if (meta && isCurrent()) known.remember(ck, meta)
      if (!meta && isCurrent()) negative.remember(ck, policyFor(store.id).negativeTtl)
      return meta
    }).value
  }

  /** A 200 from a revalidation: its body fills the cache like a first GET (dropped when too large). */
  async function adopt(ck: string, store: Store, key: string, got: GetResult): Promise<void> {
    const { value, joined } = fills.run(
      ck,
      (isCurrent) => settle({ options, ck, store, key, isCurrent }, got),
      (outcome) => (outcome.kind === 'fill' ? outcome.done : undefined),
    )
    if (joined) got.body.destroy()
    const outcome = await value
    if (outcome.kind === 'fill') return outcome.done
    if (outcome.kind === 'too-large') outcome.take()?.destroy()
    await cache.delete(ck)
  }

  const revalidator = new Revalidator({ cache, known, negative, pageSize, now, telemetry, logger, adopt })
  const { serveHit, recallFresh, revalidateLater } = createFreshReads({ cache, known, revalidator, policyFor, revalidates, now, telemetry, maxObjectSize, pageSize, versionOf })

  /** The object for a GET, uncounted: `open` counts it. */
  async function lookup(store: Store, key: string, ranged: boolean, method: string): Promise<OpenObject | null> {
    const ck = cacheKey(store.id, key)
    if (verifyOnly) return verifying(store, key, ck, ranged, method)
    const hit = await cache.get(ck)
    if (hit) {
      const served = await serveHit(store, key, ck, hit)
      if (served !== undefined) {
        if (served && verifier.sample()) verifier.check(store, key, ck, hit)
        return served
      }
    }
    if (negative.has(ck)) {
      telemetry.negativeHit()
      return null
    }
    return fetchObject(store, key, ck, ranged, method, (await recallFresh(store, ck, key))?.meta)
  }

  /** A miss: a paged or direct read of a large object, else the object's one flight. */
  async function fetchObject(store: Store, key: string, ck: string, ranged: boolean, method: string, recalled: ObjectMeta | undefined): Promise<OpenObject | null> {
    let meta = recalled
    if (!meta && ranged && !fills.has(ck)) {
      meta = (await headOnce(ck, store, key)) ?? undefined
      if (!meta) return null
    }
    if (meta && meta.size > maxObjectSize) {
      if (pageSize > 0 && !verifyOnly) return pagedObject(store, key, ck, meta, method)
      // Page caching off: each range is its own ranged upstream GET, never the whole object.
      if (ranged || verifyOnly) return direct(meta, versionOf(store, key))
    }
    const { value, joined } = fillOnce(ck, store, key)
    const outcome = await value
    if (outcome.kind === 'missing') return null
    if (outcome.kind === 'fill') return fromFill(outcome.fill, joined)
    // `verify_only` never serves cached bytes: a ranged GET that joined a too-large first GET reads exact ranges.
    if (pageSize > 0 && ranged && !verifyOnly) {
      outcome.take()?.destroy()
      return pagedObject(store, key, ck, outcome.meta, method, joined ? 'inflight' : 'miss')
    }
    return passThrough(outcome.meta, outcome.take, versionOf(store, key), joined)
  }

  /**
   * `verify_only`: never serves cached bytes. A whole object is read through its fill (which
   * caches the store's bytes again) and a cached copy compared with it; a large one is read
   * with exact ranged GETs.
   */
  async function verifying(store: Store, key: string, ck: string, ranged: boolean, method: string): Promise<OpenObject | null> {
    const hit = await cache.get(ck)
    if (!hit) return fetchObject(store, key, ck, ranged, method, (await known.recall(ck))?.meta)
    const { value, joined } = fillOnce(ck, store, key)
    const outcome = await value
    if (outcome.kind === 'missing') {
      telemetry.verifyCheck('mismatch')
      logger.warn('verify: cached object is gone from the store; dropped', { bucket: store.id, path: key, cached_etag: hit.meta.etag ?? null })
      await cache.delete(ck)
      return null
    }
    if (outcome.kind === 'fill') {
      verifier.compareWithFill(store, key, hit, outcome.fill)
      return fromFill(outcome.fill, joined)
    }
    await cache.delete(ck)
    return passThrough(outcome.meta, outcome.take, versionOf(store, key), joined)
  }

  function count<T extends OpenObject | null | undefined>(method: string, object: T): T {
    // A paged object's result depends on its ranges: it counts itself once they are planned.
    if (object && object.source !== 'page') telemetry.cacheResult(method, object.result)
    return object
  }

  return {
    open: async (store, key, ranged, method = 'GET') => count(method, await lookup(store, key, ranged, method)),

    /** The hot path: with freshness on, a hit's age costs a Map lookup and two comparisons; nothing is allocated unless it is stale. */
    openInMemory(store, key, method = 'GET') {
      if (verifyOnly) return undefined
      const ck = cacheKey(store.id, key)
      const hit = cache.peek?.(ck)
      if (!hit) return undefined
      let freshness: FreshnessStatus | undefined
      if (revalidates) {
        const policy = policyFor(store.id)
        const state = stalenessOf(hit.storedAt, policy, now())
        // Past max_stale: the async path waits for the revalidation.
        if (state === EXPIRED) return undefined
        if (state === STALE) {
          revalidateLater(store, key, ck, hit, policy)
          freshness = 'stale'
        }
      }
      if (verifier.rate > 0 && verifier.sample()) verifier.check(store, key, ck, hit)
      const object = fromMemory(hit)
      object.freshness = freshness
      return count(method, object)
    },

    async head(store, key) {
      const ck = cacheKey(store.id, key)
      const hit = verifyOnly ? undefined : await cache.get(ck)
      const served = hit && (await serveHit(store, key, ck, hit))
      if (served === null) {
        telemetry.cacheResult('HEAD', 'miss')
        return null
      }
      telemetry.cacheResult('HEAD', served ? 'hit' : 'miss')
      if (served) {
        served.release()
        return { meta: served.meta, result: 'hit', freshness: served.freshness }
      }
      if (negative.has(ck)) {
        telemetry.negativeHit()
        return null
      }
      const meta = await headOnce(ck, store, key)
      return meta && { meta, result: 'miss' }
    },

    prefetch(store, key, meta) {
      const ck = cacheKey(store.id, key)
      if (meta.size > maxObjectSize || fills.has(ck)) return
      // The fill reads the body into the cache by itself: nothing needs to follow it here.
      void cache
        .get(ck)
        .then(async (hit) => {
          if (hit || fills.has(ck)) return
          const outcome = await fillOnce(ck, store, key).value
          if (outcome.kind === 'too-large') outcome.take()?.destroy()
        })
        .catch((error: unknown) => logger.warn('prefetch failed', { store: store.id, err: error }))
    },

    /** Drops what is cached and known of `ck`, and detaches any flight that would re-cache older bytes. */
    async invalidate(ck: string): Promise<void> {
      fills.forget(ck)
      heads.forget(ck)
      revalidator.forget(ck)
      negative.forget(ck)
      await Promise.all([cache.delete(ck), known.forget(ck)])
    },

    /** Detaches what is in flight for `ck` (a purge), so nothing re-caches what was there. */
    detach(ck: string): void {
      fills.forget(ck)
      heads.forget(ck)
      revalidator.forget(ck)
    },

    /**
     * Detaches what is in flight for every object whose cache key starts with `prefix` (a purge
     * by prefix), cached or not: a fill begun before the purge must not cache what it read.
     */
    detachPrefix(prefix: string): void {
      const under = (key: string) => key.startsWith(prefix)
      fills.forgetWhere(under)
      heads.forgetWhere(under)
      revalidator.forgetPrefix(prefix)
    },

    async settled(): Promise<void> {
      while (revalidator.running().length > 0) await Promise.allSettled(revalidator.running())
      await verifier.settled()
    },

    inflightFills: () => fills.size + pager.inflight(),
  } satisfies Omit<ObjectService, 'write' | 'purge' | 'invalidate'> & { invalidate(ck: string): Promise<void>; detach(ck: string): void; detachPrefix(prefix: string): void }
}

export type ReadPath = ReturnType<typeof createReadPath>
