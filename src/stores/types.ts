import type { Readable } from 'node:stream'

/** What a store knows about an object, without its bytes. */
export interface ObjectMeta {
  /** Total size of the object in bytes (not of a range). */
  size: number
  contentType: string
  /** Strong entity tag including its quotes, e.g. `"9a0364b9e99bb480dd25e1f0284c8555"`. */
  etag?: string
  lastModified?: Date
}

/** Inclusive byte range, already resolved against the object size. */
export interface ByteRange {
  start: number
  end: number
}

export interface GetResult {
  meta: ObjectMeta
  /** The requested bytes: the whole object, or exactly `range` when one was asked for. */
  body: Readable
  range?: ByteRange
}

export interface GetOptions {
  range?: ByteRange
  signal?: AbortSignal
}

export interface PutOptions {
  contentType: string
  /** Declared length when known (Content-Length); undefined for a chunked body. */
  size?: number
  signal?: AbortSignal
  /** `*` = create only (RFC 9110 §13.1.2). */
  ifNoneMatch?: '*'
  /** Replace only if the current object has this strong ETag. */
  ifMatch?: string
}

/**
 * A backing object store. Keys are validated (see `key.ts`) before any call.
 * Missing objects come back as `null`; every other failure throws `UpstreamError`
 * (or `PreconditionFailedError` for a failed PUT precondition).
 */
export interface Store {
  readonly type: 'fs' | 's3' | 'azure'
  readonly id: string
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectMeta | null>
  get(key: string, options?: GetOptions): Promise<GetResult | null>
  /** Streams `body` to the store; resolves with the stored object's metadata. */
  put(key: string, body: Readable, options: PutOptions): Promise<ObjectMeta>
  close?(): Promise<void>
}
