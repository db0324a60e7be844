/**
 * What an upload's bytes must add up to, checked as they stream by and settled before the
 * stream ends: its declared length, the signed SHA-256 (`x-amz-content-sha256`), `Content-MD5`,
 * and a flexible checksum (`x-amz-checksum-<alg>` header or aws-chunked trailer). Shared by the
 * plain body check here and the aws-chunked decoder (chunked.ts).
 */
import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { type Checksum, type ChecksumAlgorithm, createChecksum } from './checksums.ts'
import { S3Error } from './errors.ts'

export interface BodyExpectations {
  /** Decoded bytes the client declared (Content-Length, or x-amz-decoded-content-length). */
  size?: number
  /** More decoded bytes than this: EntityTooLarge. */
  limit: number
  /** Hex SHA-256 the signature covers. */
  sha256?: string
  /** base64 MD5 (`Content-MD5`). */
  md5?: string
  /** A flexible checksum, with its value when known up front (a header; a trailer brings it later). */
  checksum?: { algorithm: ChecksumAlgorithm; expected?: string }
}

/** Running totals of one body against its expectations. */
export class BodyTally {
  readonly #expect: BodyExpectations
  readonly #sha256?: Hash
  readonly #md5?: Hash
  readonly #checksum?: Checksum
  #bytes = 0

  constructor(expect: BodyExpectations) {
    this.#expect = expect
    if (expect.sha256) this.#sha256 = createHash('sha256')
    if (expect.md5) this.#md5 = createHash('md5')
    if (expect.checksum) this.#checksum = createChecksum(expect.checksum.algorithm)
  }

  get bytes(): number {
    return this.#bytes
  }

  /** Throws EntityTooLarge as soon as the limit (or the declared size) is passed. */
  add(chunk: Buffer): void {
    this.#bytes += chunk.length
    if (this.#bytes > this.#expect.limit) throw new S3Error('EntityTooLarge', `your proposed upload exceeds the maximum allowed size (${this.#expect.limit} bytes)`, { headers: { Connection: 'close' } })
    if (this.#expect.size !== undefined && this.#bytes > this.#expect.size) throw new S3Error('IncompleteBody', 'the body is longer than its declared length')
    this.#sha256?.update(chunk)
    this.#md5?.update(chunk)
    this.#checksum?.update(chunk)
  }

  /** Throws the first expectation the whole body missed; `trailerChecksum` is what an aws-chunked trailer said. */
  settle(trailerChecksum?: string): void {
    const expect = this.#expect
    if (expect.size !== undefined && this.#bytes !== expect.size) throw new S3Error('IncompleteBody', `you did not provide the number of bytes specified (${expect.size}, got ${this.#bytes})`)
    if (this.#sha256 && this.#sha256.digest('hex') !== expect.sha256) throw new S3Error('XAmzContentSHA256Mismatch', 'the provided x-amz-content-sha256 header does not match what was computed')
    if (this.#md5 && this.#md5.digest('base64') !== expect.md5) throw new S3Error('BadDigest', 'the Content-MD5 you specified did not match what we received')
    if (this.#checksum && expect.checksum) {
      const wanted = expect.checksum.expected ?? trailerChecksum
      if (wanted === undefined) throw new S3Error('InvalidRequest', `the x-amz-checksum-${expect.checksum.algorithm} trailer is missing`)
      if (this.#checksum.digest() !== wanted) throw new S3Error('BadDigest', `the ${expect.checksum.algorithm.toUpperCase()} you specified did not match the calculated checksum`)
    }
  }
}

/** A plain (not aws-chunked) body, passed through and checked: it fails before its end when a check fails. */
export function checkedBody(expect: BodyExpectations): Transform {
  const tally = new BodyTally(expect)
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      try {
        tally.add(chunk)
      } catch (error) {
        return callback(error as Error)
      }
      callback(null, chunk)
    },
    // An error here means no 'end': the store's put sees a failed body and keeps the old object.
    flush(callback: TransformCallback) {
      try {
        tally.settle()
      } catch (error) {
        return callback(error as Error)
      }
      callback()
    },
  })
}
