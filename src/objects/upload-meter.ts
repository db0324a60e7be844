import { Transform, type TransformCallback } from 'node:stream'
import { type Bytes, keep } from '../cache/bytes.ts'
import { PayloadTooLargeError } from '../errors.ts'

/**
 * Counts upload bytes, fails the stream once they pass the upload limit, and keeps a copy
 * of the body for the cache while it stays within `keepUpTo` (max_object_size).
 */
export class UploadMeter extends Transform {
  readonly #limit: number
  readonly #keepUpTo: number
  #bytes = 0
  #kept: Buffer[] | undefined = []
  readonly #error: PayloadTooLargeError | undefined
  overLimit = false

  /** `error`: what the stream fails with past the limit (default: the upload limit's message). */
  constructor(limit: number, keepUpTo: number, error?: PayloadTooLargeError) {
    super()
    this.#limit = limit
    this.#keepUpTo = keepUpTo
    this.#error = error
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.byteLength
    if (this.#bytes > this.#limit) {
      this.overLimit = true
      callback(this.#error ?? new PayloadTooLargeError(this.#limit))
      return
    }
    if (this.#kept) {
      if (this.#bytes <= this.#keepUpTo) this.#kept.push(chunk)
      else this.#kept = undefined
    }
    callback(null, chunk)
  }

  /** The whole body, if it stayed small enough to keep. */
  collected(): Bytes | undefined {
    return this.#kept && keep(this.#kept, this.#bytes)
  }
}
