import { randomUUID } from 'node:crypto'
import type { Readable } from 'node:stream'
import { BlobServiceClient } from '@azure/storage-blob'
import type { BlobDownloadResponseParsed, ContainerClient } from '@azure/storage-blob'
import { PreconditionFailedError, UpstreamError, isDomainError } from '../errors.ts'
import type { UpstreamErrorKind } from '../errors.ts'
import { CONNECT_CODES, TIMEOUT_CODES, kindOfStatus, quoteEtag, toGetResult } from './common.ts'
import { azureAdmin, checkAzureKey } from './azure-admin.ts'
import { azureMultipart } from './azure-multipart.ts'
import type { ConditionalGetOptions, GetOptions, GetResult, NotModified, ObjectMeta, PutOptions, Store } from './types.ts'

/** Block size for streaming uploads: the body is read 4 MiB at a time, never buffered whole. */
const BLOCK_SIZE = 4 * 1024 * 1024
/** Blocks in flight per upload: memory per PUT is about BLOCK_SIZE × (MAX_IN_FLIGHT + 1). */
const MAX_IN_FLIGHT = 4
/** Azure's limit on committed blocks per blob. */
const MAX_BLOCKS = 50_000
/**
 * Retries, as S3's client does them: a few, quickly. The SDK's defaults (4 tries, delays of
 * 0, 4 and 12 s) turn a refused connection or a 503 into a 504 at the deadline; with these, a
 * failing store is a 502 in well under a second (delays 0.1 and 0.3 s), and the deadline's
 * signal stops a retry wherever it is (the policy's delay honours the request's abortSignal).
 */
const RETRY_OPTIONS = { retryDelayInMs: 100, maxRetryDelayInMs: 1000 }
const DEFAULT_MAX_TRIES = 3

export interface AzureStoreOptions {
  id: string
  container: string
  /** `DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...` or with `BlobEndpoint=` (Azurite). */
  connectionString: string
  /** Attempts per request including retries (default 3, like the S3 client; 0.1 s then 0.3 s apart). */
  maxAttempts?: number
}

/**
 * A store over an Azure Blob container (block blobs).
 *
 * @example
 * const store = createAzureStore({ id: 'assets', container: 'assets', connectionString: process.env.AZURE_CS! })
 * const meta = await store.head('logo.png')
 */
export function createAzureStore(options: AzureStoreOptions): Store {
  const { id } = options
  const container = containerClient(options)

  async function head(key: string, opts: { signal?: AbortSignal } = {}): Promise<ObjectMeta | null> {
    checkAzureKey(key)
    try {
      const props = await container.getBlobClient(key).getProperties({ abortSignal: opts.signal })
      return {
        size: props.contentLength ?? 0,
        contentType: props.contentType ?? 'application/octet-stream',
        etag: quoteEtag(props.etag),
        lastModified: props.lastModified,
      }
    } catch (error) {
      if (isAzureNotFound(error)) return null
      throw toUpstreamError(id, 'head', error)
    }
  }

  function get(key: string, opts: ConditionalGetOptions): Promise<GetResult | NotModified | null>
  function get(key: string, opts?: GetOptions): Promise<GetResult | null>
  async function get(key: string, opts: GetOptions & { ifNoneMatch?: string } = {}): Promise<GetResult | NotModified | null> {
    checkAzureKey(key)
    const { range, signal, ifNoneMatch } = opts
    const options = { abortSignal: signal, conditions: ifNoneMatch === undefined ? undefined : { ifNoneMatch } }
    let res: BlobDownloadResponseParsed
    try {
      // download(offset, count): count is a length, our range is inclusive. Without a range
      // no x-ms-range is sent, so an empty blob downloads fine.
      res = range
        ? await container.getBlobClient(key).download(range.start, range.end - range.start + 1, options)
        : await container.getBlobClient(key).download(undefined, undefined, options)
    } catch (error) {
      if (isAzureNotFound(error)) return null
      // The SDK throws a RestError on a 304.
      if (ifNoneMatch !== undefined && errorInfo(error).status === 304) return { notModified: true, etag: ifNoneMatch, lastModified: lastModifiedOf(error) }
      throw toUpstreamError(id, 'get', error)
    }
    // A RetriableReadableStream: it resumes from the last byte (pinned to the ETag) if the
    // connection drops mid-body.
    return toGetResult(
      id,
      'azure',
      { body: res.readableStreamBody as Readable | undefined, contentRange: res.contentRange, contentLength: res.contentLength, contentType: res.contentType, etag: res.etag, lastModified: res.lastModified },
      range,
      signal,
    )
  }

  /**
   * Reads the body in 4 MiB blocks, stages up to MAX_IN_FLIGHT of them at once, then commits
   * the block list with the conditions; a body smaller than one block is a single Put Blob.
   * Either way the precondition is checked atomically by the service when the blob is written
   * (Azurite honours it too).
   *
   * Not `BlockBlobClient.uploadStream`: as of 12.32 it does not pass `abortSignal` to
   * stageBlock, so neither a caller's abort nor a failed block cancels the blocks in flight
   * (they go on retrying with seconds of backoff), and it hangs on a source that stalls.
   */
  async function put(key: string, body: Readable, opts: PutOptions): Promise<ObjectMeta> {
    checkAzureKey(key)
    const blob = container.getBlockBlobClient(key)
    // Cancels every request of this upload: on the caller's abort, and once put settles.
    const requests = new AbortController()
    const { signal } = opts
    const onAbort = () => {
      requests.abort(signal?.reason)
      // A stalled body never yields again: destroying it ends the read loop below.
      body.destroy(abortReason(signal))
    }
    if (signal?.aborted) onAbort()
    signal?.addEventListener('abort', onAbort, { once: true })
    const write = {
      blobHTTPHeaders: { blobContentType: opts.contentType },
      conditions: { ifNoneMatch: opts.ifNoneMatch, ifMatch: opts.ifMatch },
      abortSignal: requests.signal,
    }
    // 50,000 blocks per blob: grow the blocks when the declared size needs it.
    const blockSize = Math.max(BLOCK_SIZE, Math.ceil((opts.size ?? 0) / MAX_BLOCKS))
    const blockIds: string[] = []
    const staging = new Set<Promise<void>>()
    // Block ids must be base64 and of equal length within a blob.
    const prefix = randomUUID()
    function stage(block: Buffer): void {
      const blockId = Buffer.from(`${prefix}-${String(blockIds.length).padStart(6, '0')}`).toString('base64')
      blockIds.push(blockId)
      const staged: Promise<void> = blob.stageBlock(blockId, block, block.length, { abortSignal: requests.signal }).then(() => {
        staging.delete(staged)
      })
      // A failure is seen by the next Promise.race / Promise.all below, never unhandled.
      staged.catch(() => {})
      staging.add(staged)
    }
    try {
      let size = 0
      let pending: Buffer[] = []
      let pendingBytes = 0
      for await (const chunk of body) {
        const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array | string)
        pending.push(bytes)
        pendingBytes += bytes.length
        size += bytes.length
        while (pendingBytes >= blockSize) {
          const joined = Buffer.concat(pending, pendingBytes)
          stage(joined.subarray(0, blockSize))
          pending = [joined.subarray(blockSize)]
          pendingBytes -= blockSize
          // Backpressure: stop reading while MAX_IN_FLIGHT blocks are on the wire.
          while (staging.size >= MAX_IN_FLIGHT) await Promise.race(staging)
        }
      }
      const last = Buffer.concat(pending, pendingBytes)
      let res: { etag?: string; lastModified?: Date }
      if (blockIds.length === 0) {
        res = await blob.upload(last, last.length, write)
      } else {
        if (last.length > 0) stage(last)
        await Promise.all(staging)
        res = await blob.commitBlockList(blockIds, write)
      }
      return { size, contentType: opts.contentType, etag: quoteEtag(res.etag), lastModified: res.lastModified }
    } catch (error) {
      if (isDomainError(error)) throw error
      const { status, code } = errorInfo(error)
      // If-None-Match: * on an existing blob answers 409 BlobAlreadyExists, not 412.
      if (status === 412 || (status === 409 && code === 'BlobAlreadyExists' && opts.ifNoneMatch === '*')) {
        throw new PreconditionFailedError('precondition failed at the store', { cause: error })
      }
      throw toUpstreamError(id, 'put', error)
    } finally {
      signal?.removeEventListener('abort', onAbort)
      // Uncommitted blocks cost nothing and are discarded by the service after a week.
      requests.abort()
    }
  }

  return { type: 'azure', id, head, get, put, ...azureAdmin({ id, container, head }), ...azureMultipart({ id, container }) }
}

/** Validates the options (once, at creation) and builds the container client. */
function containerClient(options: AzureStoreOptions): ContainerClient {
  if (!options.id) throw new Error('azure store: id is required')
  if (!options.container) throw new Error(`azure store ${options.id}: container is required`)
  if (!options.connectionString) throw new Error(`azure store ${options.id}: connection_string is required`)
  const maxTries = options.maxAttempts ?? DEFAULT_MAX_TRIES
  if (!Number.isInteger(maxTries) || maxTries < 1) throw new Error(`azure store ${options.id}: maxAttempts must be a positive integer`)
  let service: BlobServiceClient
  try {
    service = BlobServiceClient.fromConnectionString(options.connectionString, { retryOptions: { ...RETRY_OPTIONS, maxTries } })
  } catch (error) {
    // The SDK's message names the problem but never echoes the key.
    throw new Error(`azure store ${options.id}: invalid connection_string: ${(error as Error).message}`, { cause: error })
  }
  return service.getContainerClient(options.container)
}

/** Status and service error code; HEAD responses carry the code only in `details.errorCode`. */
export function errorInfo(error: unknown): { status?: number; code?: string } {
  if (typeof error !== 'object' || error === null) return {}
  const e = error as { statusCode?: number; code?: string; details?: { errorCode?: string } }
  return { status: e.statusCode, code: e.code ?? e.details?.errorCode }
}

/** Last-Modified of a 304 RestError, from its raw response headers. */
function lastModifiedOf(error: unknown): Date | undefined {
  const header = (error as { response?: { headers?: { get(name: string): string | undefined } } }).response?.headers?.get('last-modified')
  const date = header === undefined ? undefined : new Date(header)
  return date && !Number.isNaN(date.getTime()) ? date : undefined
}

/**
 * The one place that decides "missing object": 404 `BlobNotFound` (or a bare 404).
 * `ContainerNotFound` is a misconfiguration and must surface as an error, not a miss.
 */
export function isAzureNotFound(error: unknown): boolean {
  const { status, code } = errorInfo(error)
  if (status !== 404) return false
  return code === undefined || code === 'BlobNotFound'
}

export function toUpstreamError(id: string, op: string, error: unknown): Error {
  if (isDomainError(error)) return error
  const kind = classifyAzureError(error)
  const { status, code } = errorInfo(error)
  const detail = [code, status].filter((part) => part !== undefined).join(' ')
  return new UpstreamError(id, kind, `azure ${op} failed (${kind}${detail ? `: ${detail}` : ''})`, { cause: error })
}


/** Coarse failure kind for metrics and for choosing 502 vs 504. */
function classifyAzureError(error: unknown): UpstreamErrorKind {
  const name = (error as { name?: string } | undefined)?.name
  const { status, code } = errorInfo(error)
  if (name === 'AbortError') return 'aborted'
  if (code !== undefined && CONNECT_CODES.has(code)) return 'connect'
  if (name === 'TimeoutError' || (code !== undefined && TIMEOUT_CODES.has(code)) || code === 'OperationTimedOut') return 'timeout'
  const byStatus = kindOfStatus(status)
  if (byStatus) return byStatus
  return 'unknown'
}

/** An Error with name `AbortError` (so it classifies as 'aborted'), whatever the reason was. */
function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason
  if (reason instanceof Error && reason.name === 'AbortError') return reason
  return Object.assign(new Error('The operation was aborted', { cause: reason }), { name: 'AbortError' })
}


