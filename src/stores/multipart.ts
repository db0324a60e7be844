import { Transform } from 'node:stream'
import { BadRequestError, InvalidPartError } from '../errors.ts'
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
