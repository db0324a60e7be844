import { Transform, type TransformCallback, type Readable } from 'node:stream'
import { performance } from 'node:perf_hooks'
import { Fill } from './cache/fill.ts'
import { type Cache, cacheKey } from './cache/types.ts'
import { DEFAULT_CONTENT_TYPE, contentTypeFromKey, sniffContentType } from './content-type.ts'
import { PayloadTooLargeError, UpstreamError } from './errors.ts'
import type { Logger } from './log.ts'
import type { CacheResult, Telemetry } from './metrics.ts'
import type { ObjectMeta, PutOptions, Store } from './stores/types.ts'

export interface ReadResult {
  result: CacheResult
  meta: ObjectMeta
  /** A Buffer for memory hits (written in one go), else a stream to pipe. */
  body: Buffer | Readable
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
  /** Larger objects are streamed through but not cached. */
  maxObjectSize: number
  /** PUT bodies larger than this are refused (413). */
  maxUploadSize: number
  telemetry: Telemetry
  logger: Logger
}

type Outcome =
  | { kind: 'missing' }
  | { kind: 'fill'; fill: Fill }
  /** Too large to cache: the leader takes the upstream body, followers fetch their own. */
  | { kind: 'too-large'; meta: ObjectMeta; take(): Readable | undefined }

interface Flight {
  ready: Promise<Outcome>
  /** A PUT replaced the object while this flight ran: it must not fill the cache. */
  stale: boolean
}

/**
 * The read and write paths: cache lookups, singleflight fills, write-through PUT.
 * Knows nothing of HTTP or auth; throws domain errors.
 */
export function createObjectService(options: ObjectServiceOptions) {
  const { cache, maxObjectSize, maxUploadSize, telemetry, logger } = options
  const flights = new Map<string, Flight>()

  async function upstream<T>(store: Store, op: string, call: () => Promise<T>): Promise<T> {
    const started = performance.now()
    try {
      const value = await call()
      telemetry.upstreamOk(store.id, op, (performance.now() - started) / 1000)
      return value
    } catch (error) {
      if (error instanceof UpstreamError) telemetry.upstreamError(store.id, op, error.kind)
      throw error
    }
  }

  function startFlight(ck: string, store: Store, key: string): Flight {
    const flight: Flight = { stale: false, ready: undefined as unknown as Promise<Outcome> }
    const forget = () => {
      if (flights.get(ck) === flight) flights.delete(ck)
    }
    flight.ready = (async (): Promise<Outcome> => {
      // No client signal here: the fill belongs to the gateway, not to the first client.
      const got = await upstream(store, 'get', () => store.get(key))
      if (!got) return { kind: 'missing' }
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
      fill.consume(got.body).then(
        async (bytes) => {
          if (!flight.stale) await cache.set(ck, got.meta, bytes)
          forget()
        },
        (error: unknown) => {
          forget()
          telemetry.upstreamError(store.id, 'get-body', 'io')
          logger.warn('upstream body failed mid-fill; not cached', { store: store.id, err: error })
        },
      )
      return { kind: 'fill', fill }
    })()
    flight.ready.then((outcome) => outcome.kind !== 'fill' && forget(), forget)
    flights.set(ck, flight)
    return flight
  }

  /** GET: cache hit, join an in-flight fill, or start one. Null when the object is missing. */
  async function read(store: Store, key: string, method = 'GET'): Promise<ReadResult | null> {
    const ck = cacheKey(store.id, key)
    const hit = await cache.get(ck)
    if (hit) {
      telemetry.cacheResult(method, 'hit')
      return { result: 'hit', meta: hit.meta, body: hit.tier === 'memory' ? hit.body : hit.open() }
    }
    const joined = flights.get(ck)
    const flight = joined ?? startFlight(ck, store, key)
    const result: CacheResult = joined ? 'inflight' : 'miss'
    telemetry.cacheResult(method, result)
    const outcome = await flight.ready
    if (outcome.kind === 'missing') return null
    if (outcome.kind === 'fill') return { result, meta: outcome.fill.meta, body: outcome.fill.subscribe() }
    const body = outcome.take()
    if (body) return { result, meta: outcome.meta, body }
    // A follower of an uncacheable object: streaming one body to many clients of different
    // speeds would need unbounded buffering, so each follower reads its own.
    const own = await upstream(store, 'get', () => store.get(key))
    return own && { result, meta: own.meta, body: own.body }
  }

  /** HEAD: metadata from the cache when held, else from the store (not cached on its own). */
  async function head(store: Store, key: string): Promise<{ meta: ObjectMeta; result: CacheResult } | null> {
    const hit = await cache.get(cacheKey(store.id, key))
    if (hit) {
      telemetry.cacheResult('HEAD', 'hit')
      return { meta: hit.meta, result: 'hit' }
    }
    telemetry.cacheResult('HEAD', 'miss')
    const meta = await upstream(store, 'head', () => store.head(key))
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

  /** Drops the cached copy and detaches any fill that would re-cache older bytes. */
  async function invalidate(ck: string): Promise<void> {
    const flight = flights.get(ck)
    if (flight) {
      flight.stale = true
      flights.delete(ck)
    }
    await cache.delete(ck)
  }

  /**
   * PUT: streams the body to the store (never whole in memory unless it is small enough to
   * cache), then caches it. Any older cached copy is dropped before and after the upload, so
   * a failed upload leaves the store's old object and a cold (consistent) cache.
   */
  async function write(store: Store, key: string, body: Readable, request: WriteOptions): Promise<ObjectMeta> {
    const ck = cacheKey(store.id, key)
    if (request.size !== undefined && request.size > maxUploadSize) throw new PayloadTooLargeError(maxUploadSize)
    await invalidate(ck)
    const meter = new UploadMeter(maxUploadSize, maxObjectSize)
    let source: Readable = body.pipe(meter)
    body.once('error', (error) => meter.destroy(error))
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
      // The limit or the client, not the store, ended the upload: say so.
      if (meter.overLimit) throw new PayloadTooLargeError(maxUploadSize)
      throw error
    }
    await invalidate(ck)
    const bytes = meter.collected()
    if (bytes && bytes.byteLength === meta.size) await cache.set(ck, meta, bytes)
    return meta
  }

  return { read, head, prefetch, write, inflightFills: () => flights.size }
}

export type ObjectService = ReturnType<typeof createObjectService>

/**
 * Counts upload bytes, fails the stream once they pass the upload limit, and keeps a copy
 * of the body for the cache while it stays within `max_object_size`.
 */
class UploadMeter extends Transform {
  readonly #limit: number
  readonly #keepUpTo: number
  #bytes = 0
  #kept: Buffer[] | undefined = []
  overLimit = false

  constructor(limit: number, keepUpTo: number) {
    super()
    this.#limit = limit
    this.#keepUpTo = keepUpTo
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.byteLength
    if (this.#bytes > this.#limit) {
      this.overLimit = true
      callback(new PayloadTooLargeError(this.#limit))
      return
    }
    if (this.#kept) {
      if (this.#bytes <= this.#keepUpTo) this.#kept.push(chunk)
      else this.#kept = undefined
    }
    callback(null, chunk)
  }

  collected(): Buffer | undefined {
    return this.#kept && Buffer.concat(this.#kept, this.#bytes)
  }
}
