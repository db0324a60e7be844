import type { Readable } from 'node:stream'
import type { Bytes } from '../cache/bytes.ts'
import type { CacheResult } from '../metrics.ts'
import type { ByteRange, ObjectMeta, Store } from '../stores/types.ts'

/**
 * Where an opened object's bytes come from. The cache result a request is counted as follows
 * from it (`resultOf`), counted once per request: a paged object's depends on the ranges, and
 * is counted when they are planned.
 */
export type ObjectSource =
  /** The memory tier: served with no await at all. */
  | 'memory'
  /** The disk tier. */
  | 'disk'
  /** A new whole-object fill this request started. */
  | 'fill'
  /** A fill another request started (coalesced). */
  | 'joined'
  /** A large object read through its cached pages. */
  | 'page'
  /** Ranges of a large object read with exact ranged GETs, not cached (page caching off). */
  | 'direct'
  /** An object too large to cache, streamed from the store. */
  | 'pass-through'

const RESULTS: Record<ObjectSource, CacheResult> = {
  memory: 'hit',
  disk: 'hit',
  fill: 'miss',
  joined: 'inflight',
  page: 'miss',
  direct: 'miss',
  'pass-through': 'miss',
}

export function resultOf(source: ObjectSource): CacheResult {
  return RESULTS[source]
}

/**
 * An object ready to be served: its metadata now, its bytes on demand. `read` may be called
 * once per range (multipart); `release` frees anything held open that was not read.
 */
export interface OpenObject {
  meta: ObjectMeta
  source: ObjectSource
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
  /** A hit's freshness when it is worth saying (`X-CG-Status`); undefined: fresh, or freshness off. */
  freshness?: FreshnessStatus
}

/**
 * `stale`: served while a background revalidation runs; `revalidated`: the store confirmed it
 * (304) while the request waited; `stale-if-error`: the store failed, the cached copy was served;
 * `replaced`: the store had a new version, fetched while the request waited.
 */
export type FreshnessStatus = 'stale' | 'revalidated' | 'stale-if-error' | 'replaced'

export interface WriteOptions {
  /** The request's Content-Type, if it sent one (already validated). */
  contentType?: string
  /** Content-Length, if the request declared one. */
  size?: number
  ifMatch?: string
  ifNoneMatch?: '*'
  signal?: AbortSignal
  /** A smaller upload limit than `max_upload_size` for this request (a link's `ms`). */
  maxSize?: number
}

/** The read and write paths over the cache and the stores. Knows nothing of HTTP or auth. */
export interface ObjectService {
  /**
   * Finds an object for GET: a cache hit, an in-flight or new fill, or (objects over
   * `max_object_size`) a paged read or a pass-through stream. `ranged`: the request wants
   * part of the object. Null when the object does not exist.
   */
  open(store: Store, key: string, ranged: boolean, method?: string): Promise<OpenObject | null>
  /** A memory hit, found synchronously (the hot path); undefined otherwise. */
  openInMemory(store: Store, key: string, method?: string): OpenObject | undefined
  /** HEAD: metadata from the cache when held, else from the store (one HEAD for concurrent callers). */
  head(store: Store, key: string): Promise<{ meta: ObjectMeta; result: CacheResult; freshness?: FreshnessStatus | undefined } | null>
  /** Warms the cache in the background through the same singleflight. Never throws. */
  prefetch(store: Store, key: string, meta: ObjectMeta): void
  /** PUT: streams `body` to the store, then caches it when it fits. */
  write(store: Store, key: string, body: Readable, request: WriteOptions): Promise<ObjectMeta>
  /**
   * Forgets an object that changed without a PUT through `write` (an S3 DeleteObject, CopyObject
   * or CompleteMultipartUpload): cached bytes (memory, disk), pages' metadata, and flights that
   * would cache the old version; a PUT of the key still running will not cache its bytes (the
   * store may have applied it first). The next read goes to the store.
   */
  invalidate(store: Store, key: string): Promise<void>
  /** Fills and page fills in flight (a gauge). */
  inflightFills(): number
  /**
   * Drops what is cached of one object (`path`) or of every object whose key starts with
   * `prefix` in bucket `bucket`: whole entries, pages, metadata records, negative entries.
   * Resolves with how many entries it dropped.
   */
  purge(bucket: string, what: { path: string } | { prefix: string }): Promise<number>
  /** Background revalidations and verify checks in flight have ended (tests, shutdown). */
  settled(): Promise<void>
}
