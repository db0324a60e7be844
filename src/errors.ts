/**
 * Domain errors. Pure code throws these; only `src/http/` turns them into status codes.
 * Each sets `name` and keeps its `cause`.
 */
import type { ObjectMeta } from './stores/types.ts'

/** The base of every domain error: stores pass these through instead of wrapping them. */
export class DomainError extends Error {
  override name = 'DomainError'
}

/** The object key (or request path) is not acceptable: traversal, NUL, encoded slash... */
export class InvalidKeyError extends DomainError {
  override name = 'InvalidKeyError'
}

/** Why an upstream call failed, coarse enough to label a metric with. */
export type UpstreamErrorKind = 'connect' | 'timeout' | 'auth' | 'server' | 'client' | 'aborted' | 'io' | 'unknown'

/** The backing store failed (connection refused, 5xx, credentials...). Never means "not found". */
export class UpstreamError extends DomainError {
  override name = 'UpstreamError'
  readonly kind: UpstreamErrorKind
  readonly store: string
  constructor(store: string, kind: UpstreamErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.store = store
    this.kind = kind
  }
}

/** `error` as an `UpstreamError` of `store` (a body that failed mid-read: kind `io`), unless it is one. */
export function asUpstreamError(store: string, error: unknown, message: string): UpstreamError {
  return error instanceof UpstreamError ? error : new UpstreamError(store, 'io', message, { cause: error })
}

/** A precondition (If-Match / If-None-Match on PUT, If-Match on GET...) did not hold. */
export class PreconditionFailedError extends DomainError {
  override name = 'PreconditionFailedError'
  /** The object as it is now, when known: its validators go out with the answer. */
  readonly current?: ObjectMeta
  constructor(message: string, options?: { cause?: unknown; current?: ObjectMeta }) {
    super(message, options)
    this.current = options?.current
  }
}

/** No range of the request overlaps the object (RFC 9110 §15.5.17). */
export class RangeNotSatisfiableError extends DomainError {
  override name = 'RangeNotSatisfiableError'
  /** The object as it is: its size goes out in `Content-Range: bytes *\/size`. */
  readonly current: ObjectMeta
  constructor(current: ObjectMeta) {
    super(`object is ${current.size} bytes`)
    this.current = current
  }
}

/** The bucket or object does not exist. */
export class NotFoundError extends DomainError {
  override name = 'NotFoundError'
}

/** A multipart upload id that the store does not know (never created, completed or aborted): S3 `NoSuchUpload`. */
export class NoSuchUploadError extends NotFoundError {
  override name = 'NoSuchUploadError'
}

/** The request's method is not one the resource supports. */
export class MethodNotAllowedError extends DomainError {
  override name = 'MethodNotAllowedError'
  readonly allowed: readonly string[]
  constructor(allowed: readonly string[]) {
    super(`use ${allowed.join(', ')}`)
    this.allowed = allowed
  }
}

/** A CORS preflight the policy does not allow (origin, method, a header, private network). */
export class CorsRefusedError extends DomainError {
  override name = 'CorsRefusedError'
}

/** The request itself is malformed: a bad header value, a duplicated credential... */
export class BadRequestError extends DomainError {
  override name = 'BadRequestError'
}

/**
 * A multipart completion that names a part the upload does not hold, with another ETag, or out
 * of ascending order: S3 `InvalidPart` / `InvalidPartOrder` (also `EntityTooSmall`).
 */
export class InvalidPartError extends BadRequestError {
  override name = 'InvalidPartError'
}

/** A request body exceeded the configured upload limit. */
export class PayloadTooLargeError extends DomainError {
  override name = 'PayloadTooLargeError'
  readonly limit: number
  constructor(limit: number, message = `request body exceeds the upload limit of ${limit} bytes`) {
    super(message)
    this.limit = limit
  }
}

/** Authentication failed; `reason` is short and safe to show to the client. */
export class AuthError extends DomainError {
  override name = 'AuthError'
  readonly reason: string
  /** What the client is told: `reason`, or a longer safe explanation (a signed link's own fields). */
  readonly shown: string
  constructor(reason: string, detail?: string, shown?: string) {
    super(detail ?? reason)
    this.reason = reason
    this.shown = shown ?? reason
  }
}

/**
 * Authenticated, but not allowed this request: a token or a scoped (v2) link used outside its
 * scope. `reason` is a fixed label (metrics); the message says which scope failed and is safe
 * to show (it names a token's id or a link's own fields, never a secret).
 */
export class ForbiddenError extends DomainError {
  override name = 'ForbiddenError'
  readonly reason: string
  /** The token's id, when a scoped token was refused (for logs and metrics). */
  readonly tokenId?: string
  constructor(reason: string, message: string, tokenId?: string) {
    super(message)
    this.reason = reason
    this.tokenId = tokenId
  }
}

/** A PUT whose Content-Type is not the one its link requires (RFC 9110 §15.5.16). */
export class UnsupportedMediaTypeError extends DomainError {
  override name = 'UnsupportedMediaTypeError'
}

/**
 * Too many failed authentications from one client address: answered without checking the
 * credential (that check, an Ed25519 verification, is the cost being bounded).
 */
export class AuthRateLimitedError extends DomainError {
  override name = 'AuthRateLimitedError'
  /** Whole seconds until the client may try again (the `Retry-After` value). */
  readonly retryAfterSeconds: number
  constructor(retryAfterSeconds: number) {
    // Thrown for every refused request of a flood, where its stack says nothing: capturing
    // one was 15% of the gateway's CPU time in a profile of `npm run bench:auth-flood`.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(`too many failed authentications from this address; retry in ${retryAfterSeconds} s`)
    Error.stackTraceLimit = limit
    this.retryAfterSeconds = retryAfterSeconds
  }
}

/** The client went away or sent a broken body while we were reading it. */
export class RequestAbortedError extends DomainError {
  override name = 'RequestAbortedError'
}

/** True for the errors above (by class, not by a `name` anyone could set). */
export function isDomainError(error: unknown): error is DomainError {
  return error instanceof DomainError
}
