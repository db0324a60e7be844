import type { Readable } from 'node:stream'

/** What a store knows about an object, without its bytes. */
export interface ObjectMeta {
  /** Total size of the object in bytes (not of a range). */
  size: number
  contentType: string
  /** Strong entity tag including its quotes, e.g. `"9a0364b9e99bb480dd25e1f0284c8555"`. */
  etag?: string
  lastModified?: Date
  /**
   * The id of the store that answered, when it is not the bucket's own store (a fallback, see
   * `with-fallback.ts`); only `X-CG-Status` on a miss reads it.
   */
  servedBy?: string
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
  /**
   * The metrics label of this call (default `get`; page fills say `get-page`). Only the
   * metrics decorator reads it (see `with-metrics.ts`).
   */
  op?: string
  /**
   * The id of the store that answered for this object's version (`ObjectMeta.servedBy`): a
   * bucket with fallback stores asks that one first, so the pages and ranges of one read come
   * from one store (stores of different types give one object different ETags).
   */
  prefer?: string
}

/** A GET that the store answers without a body when its current version is `ifNoneMatch`. */
export interface ConditionalGetOptions extends GetOptions {
  /** One strong entity tag including its quotes, e.g. from a cached copy's `ObjectMeta.etag`. */
  ifNoneMatch: string
}

/**
 * The store's current version is the one named in `ifNoneMatch` (RFC 9110 §13.1.2, §15.4.5):
 * no body. A 304 need not carry Content-Length or Content-Type, so only what identifies the
 * version is here; the caller already holds the rest.
 */
export interface NotModified {
  notModified: true
  /** The matching entity tag (the one that was asked for). */
  etag: string
  lastModified?: Date
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
 * The `StoreAdmin` methods are optional: test doubles need not have them, and the S3 front end
 * answers NotImplemented for a store that lacks one. fs, s3 and azure have them all.
 */
export interface Store extends Partial<StoreAdmin> {
  /** What kind of store this is (`fs`, `s3`, `azure`, or anything a test or wrapper says). */
  readonly type: string
  readonly id: string
  head(key: string, options?: { signal?: AbortSignal }): Promise<ObjectMeta | null>
  /**
   * With `ifNoneMatch`, the answer may also be `NotModified`: test with `'notModified' in got`.
   * A store that cannot ask conditionally may ignore it and answer with the body (also correct:
   * the caller just gets the bytes again). Pass the options as `ConditionalGetOptions`, not as
   * a `GetOptions` that happens to hold `ifNoneMatch`, or the type will not say `NotModified`.
   */
  get(key: string, options: ConditionalGetOptions): Promise<GetResult | NotModified | null>
  get(key: string, options?: GetOptions): Promise<GetResult | null>
  /** Streams `body` to the store; resolves with the stored object's metadata. */
  put(key: string, body: Readable, options: PutOptions): Promise<ObjectMeta>
  close?(): Promise<void>
}

/** One page of a listing (S3 ListObjectsV2 semantics): keys in UTF-8 binary order. */
export interface ListOptions {
  prefix?: string
  /** Group keys by the first occurrence of this after `prefix` into `commonPrefixes`. */
  delimiter?: string
  /** List keys after this one (exclusive). */
  startAfter?: string
  /** Opaque token from a previous page's `nextContinuationToken`. */
  continuationToken?: string
  /** At most this many objects + common prefixes (1–1000). */
  maxKeys: number
  signal?: AbortSignal
}

export interface ListEntry {
  key: string
  size: number
  etag?: string
  lastModified?: Date
}

export interface ListResult {
  objects: ListEntry[]
  commonPrefixes: string[]
  isTruncated: boolean
  nextContinuationToken?: string
}

export interface MultipartPart {
  partNumber: number
  /** Strong ETag including quotes, as UploadPart returned it. */
  etag: string
  size?: number
  lastModified?: Date
}

/**
 * The operations the S3 front end needs beyond get/head/put. Every store implements them
 * (fs, s3, azure) and every decorator passes them through; `test/store-conformance.test.ts`
 * covers them for all three backends.
 */
export interface StoreAdmin {
  list(options: ListOptions): Promise<ListResult>
  /** Removes the object; a missing key is not an error (S3 DeleteObject semantics). */
  delete(key: string, options?: { signal?: AbortSignal }): Promise<void>
  /** Server-side copy within this store; null when `source` does not exist. */
  copy(source: string, destination: string, options?: { contentType?: string; signal?: AbortSignal }): Promise<ObjectMeta | null>
  /** Starts a multipart upload; returns its upload id. */
  createMultipart(key: string, options: { contentType: string; signal?: AbortSignal }): Promise<string>
  /** Streams one part (1–10000); resolves with its ETag. Unknown upload id → NoSuchUpload (NotFoundError). */
  uploadPart(key: string, uploadId: string, partNumber: number, body: Readable, options: { size?: number; signal?: AbortSignal }): Promise<MultipartPart>
  /** Assembles the listed parts in order into the object; resolves with its metadata. */
  completeMultipart(key: string, uploadId: string, parts: readonly MultipartPart[], options?: { signal?: AbortSignal }): Promise<ObjectMeta>
  abortMultipart(key: string, uploadId: string, options?: { signal?: AbortSignal }): Promise<void>
  listParts(key: string, uploadId: string, options?: { signal?: AbortSignal }): Promise<MultipartPart[]>
}
