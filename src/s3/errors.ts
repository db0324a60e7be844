/**
 * S3's error codes (AWS S3 API reference, "Error responses"), and the one place where domain
 * errors become them. Messages are safe to show: never a secret, a signature or a path on disk.
 */
import {
  AuthRateLimitedError,
  BadRequestError,
  DomainError,
  InvalidKeyError,
  InvalidPartError,
  MethodNotAllowedError,
  NoSuchUploadError,
  NotFoundError,
  PayloadTooLargeError,
  PreconditionFailedError,
  RangeNotSatisfiableError,
  RequestAbortedError,
  UpstreamError,
} from '../errors.ts'
import { unsatisfiedRange } from '../http/range.ts'

export type S3ErrorCode =
  | 'AccessDenied'
  | 'AuthorizationHeaderMalformed'
  | 'AuthorizationQueryParametersError'
  | 'BadDigest'
  | 'EntityTooLarge'
  | 'IncompleteBody'
  | 'InternalError'
  | 'InvalidAccessKeyId'
  | 'InvalidArgument'
  | 'InvalidPart'
  | 'InvalidRange'
  | 'InvalidRequest'
  | 'MalformedXML'
  | 'MethodNotAllowed'
  | 'NoSuchBucket'
  | 'NoSuchKey'
  | 'NoSuchUpload'
  | 'NotImplemented'
  | 'PreconditionFailed'
  | 'RequestTimeTooSkewed'
  | 'ServiceUnavailable'
  | 'SignatureDoesNotMatch'
  | 'SlowDown'
  | 'XAmzContentSHA256Mismatch'

const STATUS: Record<S3ErrorCode, number> = {
  AccessDenied: 403,
  AuthorizationHeaderMalformed: 400,
  AuthorizationQueryParametersError: 400,
  BadDigest: 400,
  EntityTooLarge: 400,
  IncompleteBody: 400,
  InternalError: 500,
  InvalidAccessKeyId: 403,
  InvalidArgument: 400,
  InvalidPart: 400,
  InvalidRange: 416,
  InvalidRequest: 400,
  MalformedXML: 400,
  MethodNotAllowed: 405,
  NoSuchBucket: 404,
  NoSuchKey: 404,
  NoSuchUpload: 404,
  NotImplemented: 501,
  PreconditionFailed: 412,
  RequestTimeTooSkewed: 403,
  ServiceUnavailable: 503,
  SignatureDoesNotMatch: 403,
  SlowDown: 503,
  XAmzContentSHA256Mismatch: 400,
}

/** An error already in S3's terms (thrown by the S3 front end itself). */
export class S3Error extends DomainError {
  override name = 'S3Error'
  readonly code: S3ErrorCode
  readonly headers?: Record<string, string>
  constructor(code: S3ErrorCode, message: string, options?: { cause?: unknown; headers?: Record<string, string> }) {
    super(message, options)
    this.code = code
    this.headers = options?.headers
  }

  get status(): number {
    return STATUS[this.code]
  }
}

export const notImplemented = (what: string) => new S3Error('NotImplemented', `${what} is not implemented by this gateway`)

/** A domain error (or a bug) as an S3 error; anything unknown is an InternalError whose detail stays in the log. */
export function toS3Error(error: unknown): S3Error {
  if (error instanceof S3Error) return error
  if (error instanceof InvalidKeyError) return new S3Error('InvalidArgument', `invalid object key: ${error.message}`)
  if (error instanceof InvalidPartError) return new S3Error('InvalidPart', error.message)
  if (error instanceof BadRequestError) return new S3Error('InvalidArgument', error.message)
  if (error instanceof NoSuchUploadError) return new S3Error('NoSuchUpload', 'the specified multipart upload does not exist')
  if (error instanceof NotFoundError) return new S3Error('NoSuchKey', 'the specified key does not exist')
  if (error instanceof MethodNotAllowedError) return new S3Error('MethodNotAllowed', 'the specified method is not allowed against this resource')
  if (error instanceof PreconditionFailedError) return new S3Error('PreconditionFailed', 'at least one of the preconditions you specified did not hold', { headers: validators(error.current) })
  if (error instanceof RangeNotSatisfiableError) {
    return new S3Error('InvalidRange', 'the requested range is not satisfiable', { headers: { 'Content-Range': unsatisfiedRange(error.current.size) } })
  }
  if (error instanceof PayloadTooLargeError) return new S3Error('EntityTooLarge', error.message, { headers: { Connection: 'close' } })
  if (error instanceof RequestAbortedError) return new S3Error('IncompleteBody', error.message, { headers: { Connection: 'close' } })
  if (error instanceof AuthRateLimitedError) return new S3Error('SlowDown', 'too many failed authentications from this address', { headers: { 'Retry-After': String(error.retryAfterSeconds) } })
  if (error instanceof UpstreamError) return new S3Error('ServiceUnavailable', `store "${error.store}" failed (${error.kind})`)
  return new S3Error('InternalError', 'we encountered an internal error, please try again')
}

function validators(meta: { etag?: string } | undefined): Record<string, string> | undefined {
  return meta?.etag ? { ETag: meta.etag } : undefined
}
