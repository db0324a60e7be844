/**
 * SHA-256 checks of entry bodies: the digest a write records, and the checks a read makes
 * before a recovered entry's bytes are trusted.
 */
import { createHash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import type { Bytes } from '../bytes.ts'

export class ChecksumError extends Error {
  override readonly name = 'ChecksumError'
}

/** Hashed between two turns of the event loop when a body is a chunk list. */
const HASH_SLICE = 4 * 1024 * 1024

/**
 * SHA-256 of a body without blocking the event loop for long: one Buffer is hashed by
 * WebCrypto on the thread pool (createHash would block ~40 ms on 64 MiB); a chunk list is
 * hashed a few MiB per turn of the loop.
 */
export async function digestOf(body: Bytes): Promise<string> {
  if (Buffer.isBuffer(body)) return Buffer.from(await crypto.subtle.digest('SHA-256', body as Uint8Array<ArrayBuffer>)).toString('hex')
  const hash = createHash('sha256')
  let sinceYield = 0
  for (const chunk of body) {
    hash.update(chunk)
    sinceYield += chunk.byteLength
    if (sinceYield >= HASH_SLICE) {
      sinceYield = 0
      await new Promise(setImmediate)
    }
  }
  return hash.digest('hex')
}

/** SHA-256 of everything `source` yields. */
export async function digestOfStream(source: AsyncIterable<unknown>): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of source) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/**
 * Passes a full body through, hashing it, and holds back the latest chunk until the end: on a
 * digest or length mismatch it errors instead of sending that chunk, so a reader never gets
 * all `size` bytes of a corrupt body.
 */
export class VerifyingPassThrough extends Transform {
  readonly #expected: string
  readonly #size: number
  readonly #onResult: (error?: ChecksumError) => void
  readonly #hash = createHash('sha256')
  #bytes = 0
  #held: Buffer | undefined

  /** `onResult` runs before the stream ends or errors, so the tier has reacted by the time a reader sees either. */
  constructor(expected: string, size: number, onResult: (error?: ChecksumError) => void) {
    super()
    this.#expected = expected
    this.#size = size
    this.#onResult = onResult
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk)
    this.#bytes += chunk.byteLength
    const previous = this.#held
    this.#held = chunk
    callback(null, previous)
  }

  override _flush(callback: TransformCallback): void {
    const digest = this.#hash.digest('hex')
    if (this.#bytes !== this.#size || digest !== this.#expected) {
      const error = new ChecksumError(`body checksum mismatch (${this.#bytes} of ${this.#size} bytes read)`)
      this.#onResult(error)
      callback(error)
      return
    }
    this.#onResult()
    callback(null, this.#held)
  }
}
