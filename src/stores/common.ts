import { type Readable, addAbortSignal } from 'node:stream'
import { UpstreamError, type UpstreamErrorKind } from '../errors.ts'
import type { ByteRange, GetResult } from './types.ts'

/** Network error codes meaning "the store cannot be reached". */
export const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'ECONNRESET', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'REQUEST_SEND_ERROR'])
export const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ESOCKETTIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT'])

/** The coarse kind of an HTTP failure status, for metrics and for choosing 502 vs 504. */
export function kindOfStatus(status: number | undefined): UpstreamErrorKind | undefined {
  if (status === 401 || status === 403) return 'auth'
  if (status !== undefined && status >= 500) return 'server'
  if (status !== undefined && status >= 400) return 'client'
  return undefined
}

/** Servers should quote ETags (RFC 9110 §8.8.3); a few S3-compatibles do not. */
export function quoteEtag(etag: string | undefined): string | undefined {
  if (etag === undefined || etag === '') return undefined
  return etag.startsWith('"') || etag.startsWith('W/"') ? etag : `"${etag}"`
}

/** `bytes 0-9/100` → { start: 0, end: 9, size: 100 } (RFC 9110 §14.4). */
export function parseContentRange(header: string | undefined): { start: number; end: number; size: number } | undefined {
  const match = header === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim())
  if (!match) return undefined
  return { start: Number(match[1]), end: Number(match[2]), size: Number(match[3]) }
}

/** What an SDK's GET response says about the object, in the SDK-neutral shape we need. */
export interface GetResponseFields {
  body: Readable | undefined
  contentRange: string | undefined
  contentLength: number | undefined
  contentType: string | undefined
  etag: string | undefined
  lastModified: Date | undefined
}

/**
 * Turns a GET response into a `GetResult`: the total size from `Content-Range` when a range
 * was asked for, a store that ignored the range is an error (its body would be the whole
 * object), and `signal` also cuts a body that is mid-stream, not only the request.
 */
export function toGetResult(storeId: string, label: string, response: GetResponseFields, range: ByteRange | undefined, signal: AbortSignal | undefined): GetResult {
  const { body } = response
  if (body === undefined) throw new UpstreamError(storeId, 'server', `${label} get returned no body`)
  if (signal) addAbortSignal(signal, body)
  const contentRange = parseContentRange(response.contentRange)
  if (range && contentRange === undefined) {
    body.destroy()
    throw new UpstreamError(storeId, 'server', `${label} get ignored the range`)
  }
  const meta = {
    // RFC 9110 §14.4: with a range, the total size is the complete-length in Content-Range.
    size: contentRange?.size ?? response.contentLength ?? 0,
    contentType: response.contentType ?? 'application/octet-stream',
    etag: quoteEtag(response.etag),
    lastModified: response.lastModified,
  }
  if (range && contentRange) return { meta, body, range: { start: contentRange.start, end: contentRange.end } }
  return { meta, body }
}
