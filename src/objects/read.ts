import type { Readable } from 'node:stream'
import { Fill } from '../cache/fill.ts'
import { cacheKey } from '../cache/keys.ts'
import { Singleflight } from '../cache/singleflight.ts'
import type { Cache } from '../cache/types.ts'
import { SNIFF_BYTES, contentTypeFromKey, isGenericContentType, typeFromMagicBytes } from '../content-type.ts'
import { UpstreamError, asUpstreamError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { CacheResult, Telemetry } from '../metrics.ts'
import type { ByteRange, ObjectMeta, Store } from '../stores/types.ts'
import type { KnownObjects } from './known.ts'
import { type ReadVersion, direct, fromDisk, fromFill, fromMemory, paged, passThrough } from './opened.ts'
import { createPager } from './pages.ts'
import type { ObjectService, OpenObject } from './types.ts'
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
}

/** What the first GET of an object found, shared by every request coalesced on it. */
type Outcome =
  | { kind: 'missing' }
  /** Cacheable: a fill every reader follows; `done` settles once it is cached (or failed). */
  | { kind: 'fill'; fill: Fill; done: Promise<void> }
  /** Too large to cache whole: the first reader takes the upstream body. */
  | { kind: 'too-large'; meta: ObjectMeta; take(): Readable | undefined }

/**
 * A stored object whose type says nothing (none, or octet-stream: what S3 and Azure assign
 * when the writer gave none) is typed like a PUT would type it: by the key's extension here,
 * by its magic bytes once they arrive (`sniffed`).
 */
function typed(key: string, meta: ObjectMeta): ObjectMeta {
  if (!isGenericContentType(meta.contentType)) return meta
  return { ...meta, contentType: contentTypeFromKey(key) ?? meta.contentType }
}

/**
 * An object's first GET, shared by every request coalesced on it: a fill for a cacheable
 * object (typed by its magic bytes when the store gave it no useful type), else the body of
 * one too large to cache.
 */
async function firstGet(at: { options: ReadPathOptions; ck: string; store: Store; key: string; isCurrent: () => boolean }): Promise<Outcome> {
  const { options, ck, store, key, isCurrent } = at
  const { cache, known, maxObjectSize, telemetry, logger } = options
  // No client signal here: the fill belongs to the gateway, not to the first client.
  const got = await store.get(key)
  if (!got) return { kind: 'missing' }
  const meta = typed(key, got.meta)
  if (meta.size > maxObjectSize) {
    if (isCurrent()) known.remember(ck, meta)
    let body: Readable | undefined = got.body
    const take = () => {
      const taken = body
      body = undefined
      return taken
    }
    return { kind: 'too-large', meta, take }
  }
  const fill = new Fill(meta)
  const filled = fill.consume(got.body)
  // An untyped object waits for its leading bytes (or its end) to be typed by them.
  const typing = isGenericContentType(meta.contentType)
    ? fill.head(SNIFF_BYTES).then(async (head) => {
        // A parser failure on odd bytes is no reason to fail the response: keep the generic type.
      const sniffed = await typeFromMagicBytes(head).catch(() => undefined)
        if (sniffed) fill.meta = { ...meta, contentType: sniffed }
      })
    : Promise.resolve()
  const done = Promise.all([filled, typing]).then(
    async ([bytes]) => {
      if (isCurrent()) await cache.set(ck, fill.meta, bytes)
    },
    (error: unknown) => {
      telemetry.upstreamError(store.id, 'get-body', error instanceof UpstreamError ? error.kind : 'io')
      logger.warn('upstream body failed mid-fill; not cached', { store: store.id, err: error })
    },
  )
  // A body that fails before its leading bytes fails the flight: nothing was sent, so a 5xx.
  await typing.catch((error: unknown) => {
    throw asUpstreamError(store.id, error, 'upstream body failed before its first bytes')
  })
  if (isCurrent()) known.remember(ck, fill.meta)
  return { kind: 'fill', fill, done }
}

/**
 * The read path: lookup (memory, disk) → what is known of the object's size → one flight per
 * key (singleflight) that fills the cache, or, for objects over `max_object_size`, a paged or
 * pass-through read. Counts each request's cache result once, from its object's `source`.
 */
export function createReadPath(options: ReadPathOptions) {
  const { cache, known, maxObjectSize, pageSize, telemetry, logger } = options
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
      return meta
    }).value
  }

  /** The object for a GET, uncounted: `open` counts it. */
  async function lookup(store: Store, key: string, ranged: boolean, method: string): Promise<OpenObject | null> {
    const ck = cacheKey(store.id, key)
    const hit = await cache.get(ck)
    if (hit) return hit.tier === 'memory' ? fromMemory(hit) : fromDisk(hit, versionOf(store, key))
    let meta = await known.recall(ck)
    if (!meta && ranged && !fills.has(ck)) {
      meta = (await headOnce(ck, store, key)) ?? undefined
      if (!meta) return null
    }
    if (meta && meta.size > maxObjectSize) {
      if (pageSize > 0) return pagedObject(store, key, ck, meta, method)
      // Page caching off: each range is its own ranged upstream GET, never the whole object.
      if (ranged) return direct(meta, versionOf(store, key))
    }
    const { value, joined } = fillOnce(ck, store, key)
    const outcome = await value
    if (outcome.kind === 'missing') return null
    if (outcome.kind === 'fill') return fromFill(outcome.fill, joined)
    if (pageSize > 0 && ranged) {
      outcome.take()?.destroy()
      return pagedObject(store, key, ck, outcome.meta, method, joined ? 'inflight' : 'miss')
    }
    return passThrough(outcome.meta, outcome.take, versionOf(store, key), joined)
  }

  function count<T extends OpenObject | null | undefined>(method: string, object: T): T {
    // A paged object's result depends on its ranges: it counts itself once they are planned.
    if (object && object.source !== 'page') telemetry.cacheResult(method, object.result)
    return object
  }

  return {
    open: async (store, key, ranged, method = 'GET') => count(method, await lookup(store, key, ranged, method)),

    openInMemory(store, key, method = 'GET') {
      const hit = cache.peek?.(cacheKey(store.id, key))
      return hit && count(method, fromMemory(hit))
    },

    async head(store, key) {
      const ck = cacheKey(store.id, key)
      const hit = await cache.get(ck)
      telemetry.cacheResult('HEAD', hit ? 'hit' : 'miss')
      if (hit) return { meta: hit.meta, result: 'hit' }
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
      await Promise.all([cache.delete(ck), known.forget(ck)])
    },

    inflightFills: () => fills.size + pager.inflight(),
  } satisfies Omit<ObjectService, 'write' | 'invalidate'> & { invalidate(ck: string): Promise<void> }
}

export type ReadPath = ReturnType<typeof createReadPath>
