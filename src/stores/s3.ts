import { Agent as HttpAgent } from 'node:http'
import { Agent as HttpsAgent } from 'node:https'
import { Transform, pipeline } from 'node:stream'
import type { Readable } from 'node:stream'
import { GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import type { S3ClientConfig } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { PreconditionFailedError, UpstreamError, isDomainError } from '../errors.ts'
import type { UpstreamErrorKind } from '../errors.ts'
import { CONNECT_CODES, TIMEOUT_CODES, kindOfStatus, quoteEtag, toGetResult } from './common.ts'
import { validateKey } from './key.ts'
import { s3Admin } from './s3-admin.ts'
import type { ConditionalGetOptions, GetOptions, GetResult, NotModified, ObjectMeta, PutOptions, Store } from './types.ts'

/** Multipart part size: the body is read 8 MiB at a time, never buffered whole. */
const PART_SIZE = 8 * 1024 * 1024
/** S3's limit on parts per multipart upload. */
const MAX_PARTS = 10_000
/** Parts in flight per upload: memory per PUT is about (QUEUE_SIZE + 1) × PART_SIZE. */
const QUEUE_SIZE = 2
/** One pooled agent per store; a gateway fans many concurrent GETs into one bucket. */
const MAX_SOCKETS = 256
const CONNECTION_TIMEOUT_MS = 10_000
/** Socket idle timeout: a stalled upstream fails with kind 'timeout' instead of hanging. */
const IDLE_TIMEOUT_MS = 60_000

export interface S3StoreOptions {
  id: string
  bucket: string
  region?: string
  accessKey?: string
  secretKey?: string
  /** S3-compatible endpoint (MinIO, R2, s3rver...); switches to path-style addressing. */
  endpoint?: string
  /** Allow a plain `http://` endpoint (credentials and data would cross the network in clear). */
  allowHttp?: boolean
  /** Attempts per request including retries (the SDK's default is 3). */
  maxAttempts?: number
}

/**
 * A store over an S3 bucket (or any S3-compatible server), with one pooled client per store.
 *
 * @example
 * const store = createS3Store({ id: 'media', bucket: 'my-bucket', region: 'eu-west-1' })
 * const hit = await store.get('a/b.jpg', { range: { start: 0, end: 1023 } })
 */
export function createS3Store(options: S3StoreOptions): Store {
  const { id, bucket } = options
  const client = new S3Client(clientConfig(options))

  async function head(key: string, opts: { signal?: AbortSignal } = {}): Promise<ObjectMeta | null> {
    validateKey(key)
    try {
      const out = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: opts.signal })
      return {
        size: out.ContentLength ?? 0,
        contentType: out.ContentType ?? 'application/octet-stream',
        etag: quoteEtag(out.ETag),
        lastModified: out.LastModified,
      }
    } catch (error) {
      if (isS3NotFound(error)) return null
      throw toUpstreamError(id, 'head', error)
    }
  }

  function get(key: string, opts: ConditionalGetOptions): Promise<GetResult | NotModified | null>
  function get(key: string, opts?: GetOptions): Promise<GetResult | null>
  async function get(key: string, opts: GetOptions & { ifNoneMatch?: string } = {}): Promise<GetResult | NotModified | null> {
    validateKey(key)
    const { range, signal, ifNoneMatch } = opts
    let out
    try {
      out = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined, IfNoneMatch: ifNoneMatch }),
        { abortSignal: signal },
      )
    } catch (error) {
      if (isS3NotFound(error)) return null
      // The SDK throws on a 304 (name `NotModified`, no body to parse).
      if (ifNoneMatch !== undefined && isS3NotModified(error)) return { notModified: true, etag: ifNoneMatch, lastModified: lastModifiedOf(error) }
      throw toUpstreamError(id, 'get', error)
    }
    return toGetResult(
      id,
      's3',
      { body: out.Body as Readable | undefined, contentRange: out.ContentRange, contentLength: out.ContentLength, contentType: out.ContentType, etag: out.ETag, lastModified: out.LastModified },
      range,
      signal,
    )
  }

  async function put(key: string, body: Readable, opts: PutOptions): Promise<ObjectMeta> {
    validateKey(key)
    const { signal } = opts
    try {
      // S3 enforces If-None-Match / If-Match on PutObject and CompleteMultipartUpload
      // atomically, but s3rver and some S3-compatible servers ignore both headers. So we
      // also check with a HEAD first: NOT atomic (a writer racing between the HEAD and the
      // upload wins), but it gives the same answer as S3 in the common case everywhere.
      if (opts.ifNoneMatch === '*' || opts.ifMatch !== undefined) {
        const current = await head(key, { signal })
        if (opts.ifNoneMatch === '*' && current !== null) throw new PreconditionFailedError('object already exists')
        if (opts.ifMatch !== undefined && current?.etag !== opts.ifMatch) throw new PreconditionFailedError('ETag does not match')
      }
      let size = 0
      const counted = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          size += chunk.length
          callback(null, chunk)
        },
      })
      // A failing source (client gone) destroys `counted`, which fails the upload.
      pipeline(body, counted, () => {})
      const upload = new Upload({
        client,
        // 8 MiB × 10,000 parts caps an upload at 80 GiB: grow the parts when the size says so.
        partSize: Math.max(PART_SIZE, Math.ceil((opts.size ?? 0) / MAX_PARTS)),
        queueSize: QUEUE_SIZE,
        params: {
          Bucket: bucket,
          Key: key,
          Body: counted,
          ContentType: opts.contentType,
          IfNoneMatch: opts.ifNoneMatch,
          IfMatch: opts.ifMatch,
        },
      })
      // Upload.abort() stops queueing parts and aborts the multipart upload; destroying the
      // source also stops a single-part PUT that is still reading its body.
      const onAbort = () => {
        void upload.abort()
        counted.destroy(signal?.reason instanceof Error ? signal.reason : undefined)
      }
      if (signal?.aborted) onAbort()
      signal?.addEventListener('abort', onAbort, { once: true })
      let etag: string | undefined
      try {
        etag = quoteEtag((await upload.done()).ETag)
      } finally {
        signal?.removeEventListener('abort', onAbort)
        counted.destroy()
      }
      // Neither PutObject nor CompleteMultipartUpload returns Last-Modified: ask for it.
      const stored = await head(key, { signal })
      if (stored !== null && (etag === undefined || stored.etag === etag)) return stored
      // Overwritten (or deleted) since our upload finished: describe what we wrote.
      return { size, contentType: opts.contentType, etag, lastModified: undefined }
    } catch (error) {
      if (isDomainError(error)) throw error
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
      // 409 ConditionalRequestConflict: a concurrent conditional write to the same key.
      if (status === 412 || (status === 409 && (error as { name?: string }).name === 'ConditionalRequestConflict')) {
        throw new PreconditionFailedError('precondition failed at the store', { cause: error })
      }
      throw toUpstreamError(id, 'put', error)
    }
  }

  async function close(): Promise<void> {
    client.destroy()
  }

  return { type: 's3', id, head, get, put, close, ...s3Admin({ id, bucket, client, head }) }
}

/** Validates the options (once, at creation) and builds the SDK client configuration. */
function clientConfig(options: S3StoreOptions): S3ClientConfig {
  if (!options.id) throw new Error('s3 store: id is required')
  if (!options.bucket) throw new Error(`s3 store ${options.id}: bucket is required`)
  if ((options.accessKey === undefined) !== (options.secretKey === undefined)) {
    throw new Error(`s3 store ${options.id}: access_key and secret_key must be given together`)
  }
  const maxAttempts = options.maxAttempts ?? 3
  if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new Error(`s3 store ${options.id}: maxAttempts must be a positive integer`)
  let endpoint: URL | undefined
  if (options.endpoint !== undefined) {
    try {
      endpoint = new URL(options.endpoint)
    } catch {
      throw new Error(`s3 store ${options.id}: endpoint ${JSON.stringify(options.endpoint)} is not a URL`)
    }
    if (endpoint.protocol !== 'https:' && endpoint.protocol !== 'http:') {
      throw new Error(`s3 store ${options.id}: endpoint must be http:// or https://`)
    }
    if (endpoint.protocol === 'http:' && options.allowHttp !== true) {
      throw new Error(`s3 store ${options.id}: endpoint ${options.endpoint} is plain http; set allow_http: true to accept that`)
    }
  }
  const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS }
  return {
    region: options.region ?? 'us-east-1',
    endpoint: options.endpoint,
    // S3-compatible servers rarely have wildcard DNS for virtual-hosted buckets.
    forcePathStyle: endpoint !== undefined,
    // Absent keys: the SDK's default provider chain (env, profile, web identity, IMDS...).
    credentials:
      options.accessKey !== undefined && options.secretKey !== undefined
        ? { accessKeyId: options.accessKey, secretAccessKey: options.secretKey }
        : undefined,
    maxAttempts,
    // The default (WHEN_SUPPORTED) adds CRC32 trailers that many S3-compatible servers reject,
    // and validating checksums on ranged reads costs CPU for nothing.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      // requestTimeout alone only warns (smithy 4.x) and stops once headers arrive:
      // throw on it, and cut a socket that goes quiet mid-body.
      requestTimeout: IDLE_TIMEOUT_MS,
      throwOnRequestTimeout: true,
      socketTimeout: IDLE_TIMEOUT_MS,
    },
  }
}

/**
 * The one place that decides "missing object": `NotFound` (HEAD has no body, so no code)
 * or `NoSuchKey`, or a bare 404. A missing bucket is a misconfiguration, not a miss.
 */
export function isS3NotFound(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const e = error as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } }
  if (e.name === 'NoSuchBucket' || e.Code === 'NoSuchBucket') return false
  if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.Code === 'NotFound' || e.Code === 'NoSuchKey') return true
  return e.$metadata?.httpStatusCode === 404
}

function isS3NotModified(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined
  return e?.$metadata?.httpStatusCode === 304 || e?.name === 'NotModified'
}

/** Last-Modified of a 304, when the SDK kept the raw response on the error (it usually does). */
function lastModifiedOf(error: unknown): Date | undefined {
  const header = (error as { $response?: { headers?: Record<string, string | undefined> } }).$response?.headers?.['last-modified']
  const date = header === undefined ? undefined : new Date(header)
  return date && !Number.isNaN(date.getTime()) ? date : undefined
}

export function toUpstreamError(id: string, op: string, error: unknown): Error {
  if (isDomainError(error)) return error
  const kind = classifyS3Error(error)
  const e = error as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } }
  const status = e.$metadata?.httpStatusCode
  const detail = [e.name, e.code, status].filter((part) => part !== undefined && part !== 'Error').join(' ')
  return new UpstreamError(id, kind, `s3 ${op} failed (${kind}${detail ? `: ${detail}` : ''})`, { cause: error })
}


/** Coarse failure kind for metrics and for choosing 502 vs 504. */
function classifyS3Error(error: unknown): UpstreamErrorKind {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined
  if (e?.name === 'AbortError') return 'aborted'
  const code = networkCode(error)
  if (code !== undefined && CONNECT_CODES.has(code)) return 'connect'
  if (e?.name === 'TimeoutError' || e?.name === 'RequestTimeout' || (code !== undefined && TIMEOUT_CODES.has(code))) return 'timeout'
  const status = e?.$metadata?.httpStatusCode
  const byStatus = kindOfStatus(status)
  if (byStatus) return byStatus
  if (e?.name === 'CredentialsProviderError') return 'auth'
  return 'unknown'
}

/** `code` of a Node network error, looking through AggregateError (happy eyeballs) and `cause`. */
function networkCode(error: unknown, depth = 0): string | undefined {
  if (typeof error !== 'object' || error === null || depth > 3) return undefined
  const e = error as { code?: unknown; cause?: unknown; errors?: unknown }
  if (typeof e.code === 'string') return e.code
  if (Array.isArray(e.errors)) {
    for (const inner of e.errors) {
      const code = networkCode(inner, depth + 1)
      if (code !== undefined) return code
    }
  }
  return networkCode(e.cause, depth + 1)
}


