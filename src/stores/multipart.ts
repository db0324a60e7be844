import { type Readable, Transform, pipeline } from 'node:stream'
import { BadRequestError, InvalidPartError, isDomainError } from '../errors.ts'
import type { MultipartPart } from './types.ts'

/** S3: part numbers run from 1 to 10,000. */
export const MAX_PART_NUMBER = 10_000

/** Checks a part number before any store call. */
export function checkPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PART_NUMBER) {
    throw new BadRequestError(`part number must be an integer from 1 to ${MAX_PART_NUMBER}, got ${partNumber}`)
  }
}

/** S3 CompleteMultipartUpload: at least one part, part numbers strictly ascending (`InvalidPartOrder`). */
export function checkCompletion(parts: readonly MultipartPart[]): void {
  if (parts.length === 0) throw new InvalidPartError('a multipart upload is completed with at least one part')
  let previous = 0
  for (const part of parts) {
    checkPartNumber(part.partNumber)
    if (part.partNumber <= previous) throw new InvalidPartError('parts must be listed in ascending order of part number, each once')
    previous = part.partNumber
  }
}

/** An ETag without its quotes (S3 compares part ETags that way). */
export function unquote(etag: string): string {
  return etag.replace(/^W\//, '').replace(/"/g, '')
}

/**
 * A pass-through that fails with `BadRequestError` when the body is not `size` bytes: longer
 * as soon as it is, shorter at its end (a store sending a Content-Length would otherwise wait
 * for bytes that never come, or send a truncated part).
 */
export function exactSize(size: number): Transform {
  let seen = 0
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length
      if (seen > size) return callback(new BadRequestError(`part body is longer than the ${size} bytes declared`))
      callback(null, chunk)
    },
    flush(callback) {
      callback(seen < size ? new BadRequestError(`part body was ${seen} bytes, not the ${size} declared`) : null)
    },
  })
}

/** A part's body as a store sends it: exactly `size` bytes, with a signal that ends the store's request when the body fails. */
export interface SizedPart {
  /** The body to hand to the store's request (fails unless exactly `size` bytes arrive). */
  body: Transform
  /** Aborts the store's request when the body fails, or when the caller's signal does. */
  signal: AbortSignal
  /** The body's own failure (a wrong size: a `BadRequestError`), when it is a domain error. */
  failure(): unknown
}

/**
 * Pipes `body` through `exactSize(size)`. A body that fails (a wrong size, a client gone) must
 * also end the store's request, which would otherwise wait for the bytes its Content-Length
 * promised; that failure is then the answer (`failure()`), not the aborted request's error.
 */
export function sizedPart(body: Readable, size: number, outer?: AbortSignal): SizedPart {
  const sized = exactSize(size)
  const request = new AbortController()
  const signal = outer ? AbortSignal.any([outer, request.signal]) : request.signal
  let mismatch: unknown
  sized.once('error', (error) => {
    mismatch ??= error
    request.abort(error)
  })
  pipeline(body, sized, () => {})
  return { body: sized, signal, failure: () => (isDomainError(mismatch) ? mismatch : undefined) }
}
