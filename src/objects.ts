import type { Readable } from 'node:stream'
import { performance } from 'node:perf_hooks'
import { LRUCache } from 'lru-cache'
import { type Bytes, byteLength, sliceBytes, toBuffer } from './cache/bytes.ts'
import { Fill } from './cache/fill.ts'
import { type Cache, type CacheHit, cacheKey } from './cache/types.ts'
import { DEFAULT_CONTENT_TYPE, contentTypeFromKey, sniffContentType } from './content-type.ts'
import { PayloadTooLargeError, RequestAbortedError, UpstreamError } from './errors.ts'
import type { Logger } from './log.ts'
import type { CacheResult, Telemetry } from './metrics.ts'
import type { PagePlan } from './page-budget.ts'
import { createPager } from './pages.ts'
import { failWhenIdle, isMissingFile, link, sliceStream, whenReadable } from './streams.ts'
import type { ByteRange, ObjectMeta, PutOptions, Store } from './stores/types.ts'
import { UploadMeter } from './upload-meter.ts'

/**
 * An object ready to be served: its metadata now, its bytes on demand. `read` may be called
 * once per range (multipart); `release` frees anything held open that was not read.
 */
export interface OpenObject {
  meta: ObjectMeta
  result: CacheResult
  /** Whole object, or one inclusive range of it. Memory hits come back as bytes, not streams. */
  read(range?: ByteRange): Promise<Bytes | Readable>
  /**
   * Called once with all the request's ranges before any `read`. For paged objects: whether
   * they are all served from cache, and the plan of which pages the reads may fetch (else the
   * same as `result`).
   */
  cached(ranges: readonly ByteRange[]): Promise<boolean>
  release(): void
  /** The whole object, when it sits in memory: served with no await at all. */
  bytes?: Bytes
}

export interface WriteOptions {
  /** The request's Content-Type, if it sent one (already validated). */
  contentType?: string
  /** Content-Length, if the request declared one. */
  size?: number
  ifMatch?: string
  ifNoneMatch?: '*'
  signal?: AbortSignal
}

export interface ObjectServiceOptions {
  cache: Cache
  /** Larger objects are not cached whole: streamed through, or cached page by page. */
  maxObjectSize: number
  /** PUT bodies larger than this are refused (413). */
  maxUploadSize: number
  /** Page size for large objects; 0 disables page caching. */
  pageSize?: number
  /** Pages fetched ahead of the one being sent (default 2). */
  readAhead?: number
  /**
   * A store call that has not answered (headers) within this many ms, or a body the gateway
   * is reading that stalls this long, fails with an `UpstreamError` of kind `timeout` (504).
   * Default 30 s.
   */
  upstreamTimeoutMs?: number
  telemetry: Telemetry
  logger: Logger
}

type Outcome =
  | { kind: 'missing' }
  | { kind: 'fill'; fill: Fill }
  /** Too large to cache whole: the leader takes the upstream body, followers fetch their own. */
  | { kind: 'too-large'; meta: ObjectMeta; take(): Readable | undefined }

interface Flight {
  ready: Promise<Outcome>
  /** A PUT replaced the object while this flight ran: it must not fill the cache. */
  stale: boolean
}

/** The cache key of a large object's metadata record (see `remember`). */
const metaRecordKey = (ck: string) => `${ck}\u0000meta`

/** Metadata of objects seen recently, so ranged reads of large objects need no HEAD each time. */
const KNOWN_META_ENTRIES = 10_000

/**
 * The read and write paths: cache lookups, singleflight fills, page-aligned reads of large
 * objects, write-through PUT. Knows nothing of HTTP or auth; throws domain errors.
 */
export function createObjectService(options: ObjectServiceOptions) {
  const { cache, maxObjectSize, maxUploadSize, telemetry, logger } = options
  const pageSize = options.pageSize ?? 0
  const flights = new Map<string, Flight>()
  const heads = new Map<string, Promise<ObjectMeta | null>>()
  const known = new LRUCache<string, ObjectMeta>({ max: KNOWN_META_ENTRIES })
  /** PUTs in progress per key. Overlapping PUTs never cache: which one the store kept is unknown. */
  const writes = new Map<string, { running: number; overlapped: boolean }>()
  const timeoutMs = options.upstreamTimeoutMs ?? 30_000

  /**
   * Runs a store call with metrics and, except for uploads, a deadline on its answer: a store
   * that accepts the connection and never answers must not hold a key's singleflight forever.
   * A body that arrives after the deadline is destroyed.
   */
  async function upstream<T>(store: Store, op: string, call: () => Promise<T>): Promise<T> {
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    try {
      const pending = call()
      const value =
        op === 'put'
          ? await pending
          : await Promise.race([
              pending,
              new Promise<never>((_, reject) => {
                timer = setTimeout(() => {
                  pending.then((late) => (late as { body?: Readable } | null)?.body?.destroy(), () => {})
                  reject(new UpstreamError(store.id, 'timeout', `store ${op} did not answer within ${timeoutMs} ms`))
                }, timeoutMs)
              }),
            ])
      telemetry.upstreamOk(store.id, op, (performance.now() - started) / 1000)
      return value
    } catch (error) {
      if (error instanceof UpstreamError) telemetry.upstreamError(store.id, op, error.kind)
      throw error
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * Keeps an object's metadata. For a paged (large) object it is also cached as a small
   * record beside its pages, so after a restart its pages are served with no HEAD upstream.
   */
  function remember(ck: string, meta: ObjectMeta): void {
    known.set(ck, meta)
    if (pageSize > 0 && meta.size > maxObjectSize) {
      const record = Buffer.from(JSON.stringify({ ...meta, lastModified: meta.lastModified?.toISOString() }))
      void cache.set(metaRecordKey(ck), { size: record.byteLength, contentType: 'application/json' }, record).catch(() => {})
    }
  }

  /** Metadata of a large object from its cached record, if any. */
  async function recall(ck: string): Promise<ObjectMeta | undefined> {
    const hit = await cache.get(metaRecordKey(ck))
    if (!hit) return undefined
    try {
      const bytes = hit.tier === 'memory' ? toBuffer(hit.body) : Buffer.concat(await hit.open().toArray())
      const parsed = JSON.parse(bytes.toString()) as ObjectMeta & { lastModified?: string }
      const meta: ObjectMeta = { ...parsed, lastModified: parsed.lastModified ? new Date(parsed.lastModified) : undefined }
      known.set(ck, meta)
      return meta
    } catch {
      return undefined
    }
  }

  const stalled = (store: Store) => () => new UpstreamError(store.id, 'timeout', `upstream body stalled for ${timeoutMs} ms`)
  const pager = createPager({
    cache,
    pageSize: pageSize || 1,
    readAhead: options.readAhead ?? 2,
    upstream,
    readExact: readVersion,
    watch: (store, body) => failWhenIdle(body, timeoutMs, stalled(store)),
    async onChanged(ck) {
      known.delete(ck)
      await cache.delete(metaRecordKey(ck))
    },
    onBodyError(store, error) {
      telemetry.upstreamError(store.id, 'get-page-body', error instanceof UpstreamError ? error.kind : 'io')
      logger.warn('upstream page body failed mid-read; not cached', { store: store.id, err: error })
    },
  })

  function startFlight(ck: string, store: Store, key: string): Flight {
    const flight: Flight = { stale: false, ready: undefined as unknown as Promise<Outcome> }
    const forget = () => {
      if (flights.get(ck) === flight) flights.delete(ck)
    }
    flight.ready = (async (): Promise<Outcome> => {
      // No client signal here: the fill belongs to the gateway, not to the first client.
      const got = await upstream(store, 'get', () => store.get(key))
      if (!got) return { kind: 'missing' }
      if (!flight.stale) remember(ck, got.meta)
      if (got.meta.size > maxObjectSize) {
        let body: Readable | undefined = got.body
        return {
          kind: 'too-large',
          meta: got.meta,
          take: () => {
            const taken = body
            body = undefined
            return taken
          },
        }
      }
      const fill = new Fill(got.meta)
      fill.consume(failWhenIdle(got.body, timeoutMs, stalled(store))).then(
        async (bytes) => {
          if (!flight.stale) await cache.set(ck, got.meta, bytes)
          forget()
        },
        (error: unknown) => {
          forget()
          telemetry.upstreamError(store.id, 'get-body', error instanceof UpstreamError ? error.kind : 'io')
          logger.warn('upstream body failed mid-fill; not cached', { store: store.id, err: error })
        },
      )
      return { kind: 'fill', fill }
    })()
    flight.ready.then((outcome) => outcome.kind !== 'fill' && forget(), forget)
    flights.set(ck, flight)
    return flight
  }

  /** HEAD upstream, once for concurrent callers; remembers the answer. */
  function headOnce(ck: string, store: Store, key: string): Promise<ObjectMeta | null> {
    let pending = heads.get(ck)
    if (!pending) {
      pending = upstream(store, 'head', () => store.head(key))
      heads.set(ck, pending)
      const forget = () => heads.get(ck) === pending && heads.delete(ck)
      pending.then((meta) => {
        // A PUT that invalidated the key meanwhile dropped this HEAD: its answer may be stale.
        if (meta && heads.get(ck) === pending) remember(ck, meta)
        forget()
      }, forget)
    }
    return pending
  }

  const slice = (bytes: Bytes, range?: ByteRange) => (range ? sliceBytes(bytes, range.start, range.end) : bytes)
  const whole = (meta: ObjectMeta): ByteRange => ({ start: 0, end: meta.size - 1 })

  /**
   * A paged object's hit or miss depends on the ranges asked for: counted in `cached`, which
   * also plans which cold pages the request may fetch (page-budget.ts) before any read.
   * `counted`: the request was already counted (it joined a flight), and is never a hit.
   */
  function paged(store: Store, key: string, ck: string, meta: ObjectMeta, method: string, counted?: CacheResult): OpenObject {
    let plan: Promise<PagePlan> | undefined
    const planned = (ranges: readonly ByteRange[]) => (plan ??= pager.plan(ck, meta, ranges))
    return {
      meta,
      result: counted ?? 'miss',
      async read(range = whole(meta)) {
        const { mayFetch } = await planned([range])
        return pager.read(store, key, ck, meta, range, mayFetch)
      },
      async cached(ranges) {
        const { cached } = await planned(ranges)
        if (counted) return false
        telemetry.cacheResult(method, cached ? 'hit' : 'miss')
        return cached
      },
      release() {},
    }
  }

  /** A memory hit, found synchronously (the hot path); undefined otherwise. */
  function openInMemory(store: Store, key: string, method = 'GET'): OpenObject | undefined {
    const hit = cache.peek?.(cacheKey(store.id, key))
    if (!hit) return undefined
    telemetry.cacheResult(method, 'hit')
    return { meta: hit.meta, result: 'hit', bytes: hit.body, read: async (range) => slice(hit.body, range), cached: async () => true, release() {} }
  }

  /**
   * A disk hit's bytes, once its file is open: an entry evicted or replaced between the lookup
   * and the open (ENOENT) is read from the store instead, if the store still has that version.
   */
  async function readDiskHit(store: Store, key: string, hit: Extract<CacheHit, { tier: 'disk' }>, range?: ByteRange): Promise<Readable> {
    const body = hit.open(range)
    try {
      await whenReadable(body)
      return body
    } catch (error) {
      if (!isMissingFile(error)) throw error
    }
    return readVersion(store, key, hit.meta, range)
  }

  /** A GET of `key` (or of one range of it) that fails unless the store still has version `meta`. */
  async function readVersion(store: Store, key: string, meta: ObjectMeta, range?: ByteRange): Promise<Readable> {
    const got = await upstream(store, 'get', () => store.get(key, { range }))
    if (!got || got.meta.etag !== meta.etag || got.meta.size !== meta.size) {
      got?.body.destroy()
      throw new UpstreamError(store.id, 'server', 'object changed upstream during the read')
    }
    return got.body
  }

  /** Uncached ranged reads of a large object: one ranged upstream GET per range read. */
  function direct(store: Store, key: string, meta: ObjectMeta, method: string): OpenObject {
    telemetry.cacheResult(method, 'miss')
    return {
      meta,
      result: 'miss',
      read: (range) => readVersion(store, key, meta, range),
      cached: async () => false,
      release() {},
    }
  }

  /**
   * Finds an object for GET: a cache hit, an in-flight or new fill, or (objects over
   * `max_object_size`) a paged read or a pass-through stream. `ranged`: the request wants
   * part of the object, so a large one is worth paging even before its first full read.
   * Null when the object does not exist. Counts the request as hit, miss or inflight
   * (for paged objects, when `cached` is asked).
   */
  async function open(store: Store, key: string, ranged: boolean, method = 'GET'): Promise<OpenObject | null> {
    const ck = cacheKey(store.id, key)
    const hit = await cache.get(ck)
    if (hit) {
      telemetry.cacheResult(method, 'hit')
      const result = 'hit' as const
      if (hit.tier === 'memory') return { meta: hit.meta, result, read: async (range) => slice(hit.body, range), cached: async () => true, release() {} }
      return { meta: hit.meta, result, read: (range) => readDiskHit(store, key, hit, range), cached: async () => true, release() {} }
    }
    let meta = known.get(ck) ?? (await recall(ck))
    if (!meta && ranged && !flights.has(ck)) {
      meta = (await headOnce(ck, store, key)) ?? undefined
      if (!meta) return null
    }
    if (meta && meta.size > maxObjectSize) {
      if (pageSize > 0) return paged(store, key, ck, meta, method)
      // Page caching off: each range is its own ranged upstream GET, never the whole object.
      if (ranged) return direct(store, key, meta, method)
    }
    const joined = flights.get(ck)
    const flight = joined ?? startFlight(ck, store, key)
    const result: CacheResult = joined ? 'inflight' : 'miss'
    telemetry.cacheResult(method, result)
    const outcome = await flight.ready
    if (outcome.kind === 'missing') return null
    if (outcome.kind === 'fill') {
      const { fill } = outcome
      return {
        meta: fill.meta,
        result,
        read: async (range) => (range ? sliceStream(fill.subscribe(), range) : fill.subscribe()),
        cached: async () => false,
        release() {},
      }
    }
    if (pageSize > 0 && ranged) {
      outcome.take()?.destroy()
      return paged(store, key, ck, outcome.meta, method, result)
    }
    // A follower of an uncacheable object: streaming one body to many clients of different
    // speeds would need unbounded buffering, so each follower reads its own.
    let body = outcome.take()
    return {
      meta: outcome.meta,
      result,
      async read(range) {
        const taken = body
        body = undefined
        if (taken) return range ? sliceStream(taken, range) : taken
        const own = await upstream(store, 'get', () => store.get(key, { range }))
        if (!own) throw new UpstreamError(store.id, 'server', 'object disappeared during the read')
        return own.body
      },
      cached: async () => false,
      release() {
        body?.destroy()
        body = undefined
      },
    }
  }

  /** HEAD: metadata from the cache (or recent knowledge) when held, else from the store. */
  async function head(store: Store, key: string): Promise<{ meta: ObjectMeta; result: CacheResult } | null> {
    const ck = cacheKey(store.id, key)
    const hit = await cache.get(ck)
    if (hit) {
      telemetry.cacheResult('HEAD', 'hit')
      return { meta: hit.meta, result: 'hit' }
    }
    telemetry.cacheResult('HEAD', 'miss')
    const meta = await headOnce(ck, store, key)
    return meta && { meta, result: 'miss' }
  }

  /** Warms the cache in the background through the same singleflight. Never throws. */
  function prefetch(store: Store, key: string, meta: ObjectMeta): void {
    const ck = cacheKey(store.id, key)
    if (meta.size > maxObjectSize || flights.has(ck)) return
    void cache
      .get(ck)
      .then((hit) => {
        if (hit || flights.has(ck)) return
        return startFlight(ck, store, key).ready.then((outcome) => {
          if (outcome.kind === 'fill') outcome.fill.subscribe().resume()
          if (outcome.kind === 'too-large') outcome.take()?.destroy()
        })
      })
      .catch((error: unknown) => logger.warn('prefetch failed', { store: store.id, err: error }))
  }

  /** Drops the cached copy and what we knew, and detaches any fill that would re-cache older bytes. */
  async function invalidate(ck: string): Promise<void> {
    const flight = flights.get(ck)
    if (flight) {
      flight.stale = true
      flights.delete(ck)
    }
    known.delete(ck)
    heads.delete(ck)
    await Promise.all([cache.delete(ck), cache.delete(metaRecordKey(ck))])
  }

  /**
   * PUT: streams the body to the store (never whole in memory unless it is small enough to
   * cache), then caches it. Any older cached copy is dropped before and after the upload, so
   * a failed upload leaves the store's old object and a cold (consistent) cache. Old pages of
   * a large object stay until evicted but are never served: they carry the old ETag.
   */
  async function write(store: Store, key: string, body: Readable, request: WriteOptions): Promise<ObjectMeta> {
    const ck = cacheKey(store.id, key)
    if (request.size !== undefined && request.size > maxUploadSize) throw new PayloadTooLargeError(maxUploadSize)
    const pending = writes.get(ck) ?? { running: 0, overlapped: false }
    if (pending.running > 0) pending.overlapped = true
    pending.running++
    writes.set(ck, pending)
    try {
      return await writeThrough(store, key, ck, body, request, () => !pending.overlapped)
    } finally {
      if (--pending.running === 0) writes.delete(ck)
    }
  }

  async function writeThrough(store: Store, key: string, ck: string, body: Readable, request: WriteOptions, alone: () => boolean): Promise<ObjectMeta> {
    await invalidate(ck)
    // Linked at once: an upload that fails before the store reads it (a client gone mid-body,
    // a malformed chunk, the size limit) fails this request, never the process.
    const meter = link(body, new UploadMeter(maxUploadSize, maxObjectSize), {
      prematureClose: () => new RequestAbortedError('client closed the connection during the upload'),
    })
    let source: Readable = meter
    let contentType = request.contentType ?? contentTypeFromKey(key)
    if (!contentType) {
      const sniffed = await sniffContentType(source)
      source = sniffed.body
      contentType = sniffed.contentType ?? DEFAULT_CONTENT_TYPE
    }
    const put: PutOptions = { contentType, size: request.size, ifMatch: request.ifMatch, ifNoneMatch: request.ifNoneMatch, signal: request.signal }
    let meta: ObjectMeta
    try {
      meta = await upstream(store, 'put', () => store.put(key, source, put))
    } catch (error) {
      // A store that failed before reading it all leaves the rest of the body unread.
      meter.destroy()
      // The limit, not the store, ended the upload: say so.
      if (meter.overLimit) throw new PayloadTooLargeError(maxUploadSize)
      throw error
    }
    await invalidate(ck)
    // Two PUTs of one key overlapped: the store kept one of them, and we cannot tell which
    // from here, so neither caches (both invalidated); the next read fetches the truth.
    if (!alone()) return meta
    const bytes = meter.collected()
    if (bytes && byteLength(bytes) === meta.size) await cache.set(ck, meta, bytes)
    else remember(ck, meta)
    return meta
  }

  return { open, openInMemory, head, prefetch, write, inflightFills: () => flights.size + pager.inflight() }
}

export type ObjectService = ReturnType<typeof createObjectService>
