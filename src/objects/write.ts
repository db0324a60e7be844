import type { Readable } from 'node:stream'
import { byteLength } from '../cache/bytes.ts'
import { cacheKey } from '../cache/keys.ts'
import type { Cache } from '../cache/types.ts'
import { DEFAULT_CONTENT_TYPE, contentTypeFromKey, sniffContentType } from '../content-type.ts'
import { PayloadTooLargeError, RequestAbortedError } from '../errors.ts'
import { link } from '../streams.ts'
import type { ObjectMeta, PutOptions, Store } from '../stores/types.ts'
import type { KnownObjects } from './known.ts'
import type { WriteOptions } from './types.ts'
import { UploadMeter } from './upload-meter.ts'

export interface WritePathOptions {
  cache: Cache
  known: KnownObjects
  /** Drops the cached copy and what is known, and detaches fills that would re-cache old bytes. */
  invalidate(ck: string): Promise<void>
  maxObjectSize: number
  /** PUT bodies larger than this are refused (413). */
  maxUploadSize: number
}

/**
 * The write path: PUT streams the body to the store (never whole in memory unless it is small
 * enough to cache), then caches it. Any older cached copy is dropped before and after the
 * upload (a failed one too: the store may have kept it), so the cache never outlives the write. Old
 * pages of a large object stay until evicted but are never served: they carry the old version.
 */
export function createWritePath(options: WritePathOptions) {
  const { cache, known, invalidate, maxObjectSize, maxUploadSize } = options
  /** PUTs in progress per key. Overlapping PUTs never cache: which one the store kept is unknown. */
  const writes = new Map<string, { running: number; overlapped: boolean }>()

  async function write(store: Store, key: string, body: Readable, request: WriteOptions): Promise<ObjectMeta> {
    const ck = cacheKey(store.id, key)
    const limit = limitOf(request)
    if (request.size !== undefined && request.size > limit) throw tooLarge(limit, request)
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
    const limit = limitOf(request)
    const meter = link(body, new UploadMeter(limit, maxObjectSize, limit === request.maxSize ? tooLarge(limit, request) : undefined), {
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
      meta = await store.put(key, source, put)
    } catch (error) {
      // A store that failed before reading it all leaves the rest of the body unread.
      meter.destroy()
      // The store may have written it anyway (a timeout, a lost answer), and a read meanwhile
      // may have cached the old bytes again: drop them, as after a success.
      await invalidate(ck)
      // The limit, not the store, ended the upload: say so.
      if (meter.overLimit) throw tooLarge(limit, request)
      throw error
    }
    await invalidate(ck)
    // Two PUTs of one key overlapped: the store kept one of them, and we cannot tell which
    // from here, so neither caches (both invalidated); the next read fetches the truth.
    if (!alone()) return meta
    const bytes = meter.collected()
    if (bytes && byteLength(bytes) === meta.size) await cache.set(ck, meta, bytes)
    else known.remember(ck, meta)
    return meta
  }

  /**
   * Another write of `ck` (a delete, a copy, a completed multipart upload) reached the store:
   * a PUT still running may have landed before it, so it must not cache its bytes.
   */
  function touched(ck: string): void {
    const pending = writes.get(ck)
    if (pending) pending.overlapped = true
  }

  /** The request's own limit (a link's `ms`) when it is the smaller one. */
  function limitOf(request: WriteOptions): number {
    return request.maxSize !== undefined && request.maxSize < maxUploadSize ? request.maxSize : maxUploadSize
  }

  function tooLarge(limit: number, request: WriteOptions): PayloadTooLargeError {
    return limit === request.maxSize ? new PayloadTooLargeError(limit, `request body exceeds this link's limit of ${limit} bytes`) : new PayloadTooLargeError(limit)
  }

  return { write, touched }
}
