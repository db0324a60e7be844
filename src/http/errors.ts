import {
  AuthError,
  AuthRateLimitedError,
  BadRequestError,
  CorsRefusedError,
  ForbiddenError,
  InvalidKeyError,
  InvalidPartError,
  MethodNotAllowedError,
  NoSuchUploadError,
  NotFoundError,
  PayloadTooLargeError,
  PreconditionFailedError,
  RangeNotSatisfiableError,
  RequestAbortedError,
  UnsupportedMediaTypeError,
  UpstreamError,
} from '../errors.ts'
import type { ObjectMeta } from '../stores/types.ts'
import { httpDate } from './conditional.ts'
import { unsatisfiedRange } from './range.ts'

export interface HttpError {
  status: 400 | 401 | 403 | 404 | 405 | 408 | 412 | 413 | 415 | 416 | 429 | 500 | 502 | 504
  /** Short, safe to show: never a secret, a path on disk or an upstream credential. */
  error: string
  message?: string
  headers?: Record<string, string>
  /** The domain error, where a page for a person says more than status and message (error-page.ts). */
  cause?: unknown
}

/**
 * The one place where domain errors become status codes. Anything unknown is a 500 whose
 * detail stays in the log (and Sentry), not in the response.
 */
export function toHttpError(error: unknown): HttpError {
  if (error instanceof InvalidKeyError) return { status: 400, error: 'invalid path', message: error.message }
  if (error instanceof InvalidPartError) return { status: 400, error: 'invalid part', message: error.message }
  if (error instanceof BadRequestError) return { status: 400, error: 'bad request', message: error.message }
  // Fetch §4.8: a refused preflight is a network error for the page; 403 tells a person why.
  if (error instanceof CorsRefusedError) return { status: 403, error: 'cors preflight refused', message: error.message }
  if (error instanceof NoSuchUploadError) return { status: 404, error: 'no such upload', message: error.message }
  if (error instanceof NotFoundError) return { status: 404, error: 'not found', message: error.message }
  if (error instanceof MethodNotAllowedError) return { status: 405, error: 'method not allowed', message: error.message, headers: { Allow: error.allowed.join(', ') } }
  if (error instanceof AuthError) {
    return { status: 401, error: 'unauthorized', message: error.shown, cause: error, headers: { 'WWW-Authenticate': `Bearer realm="cachegate", error="invalid_token", error_description="${error.reason}"` } }
  }
  if (error instanceof ForbiddenError) return { status: 403, error: 'forbidden', message: error.message, cause: error }
  if (error instanceof UnsupportedMediaTypeError) return { status: 415, error: 'unsupported media type', message: error.message }
  // RFC 6585 §4: 429 Too Many Requests, with Retry-After (RFC 9110 §10.2.3) in seconds.
  if (error instanceof AuthRateLimitedError) {
    return { status: 429, error: 'too many requests', message: 'too many failed authentications from this address', headers: { 'Retry-After': String(error.retryAfterSeconds) } }
  }
  if (error instanceof PreconditionFailedError) {
    return { status: 412, error: 'precondition failed', message: error.message, headers: error.current && validators(error.current) }
  }
  // RFC 9110 §14.4: a 416 names the current length in `Content-Range: bytes */size`.
  if (error instanceof RangeNotSatisfiableError) {
    return { status: 416, error: 'range not satisfiable', message: error.message, headers: { 'Content-Range': unsatisfiedRange(error.current.size), ...validators(error.current) } }
  }
  if (error instanceof PayloadTooLargeError) return { status: 413, error: 'payload too large', message: error.message, headers: { Connection: 'close' } }
  if (error instanceof RequestAbortedError) return { status: 400, error: 'request aborted', message: error.message, headers: { Connection: 'close' } }
  if (error instanceof UpstreamError) {
    const status = error.kind === 'timeout' ? 504 : 502
    return { status, error: 'upstream error', message: `store "${error.store}" failed: ${describeKind(error.kind)}` }
  }
  return { status: 500, error: 'internal error' }
}

/** ETag and Last-Modified of the current object, so a client can tell which version answered. */
function validators(meta: ObjectMeta): Record<string, string> {
  const headers: Record<string, string> = {}
  if (meta.etag) headers.ETag = meta.etag
  if (meta.lastModified) headers['Last-Modified'] = httpDate(meta.lastModified)
  return headers
}

function describeKind(kind: UpstreamError['kind']): string {
  switch (kind) {
    case 'connect':
      return 'cannot connect'
    case 'timeout':
      return 'timed out'
    case 'auth':
      return 'access denied by the store'
    case 'server':
      return 'the store returned a server error'
    case 'client':
      return 'the store rejected the request'
    case 'aborted':
      return 'the transfer was aborted'
    case 'io':
      return 'I/O error'
    default:
      return 'unknown error'
  }
}
