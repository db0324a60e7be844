/**
 * An S3 request body as the store should get it: decoded (aws-chunked) and checked (signature,
 * hashes, checksums) as it streams, never buffered whole. The returned stream fails before its
 * end when anything does not hold, and the request body is linked to it (`link`), so a client
 * that leaves mid-body fails it too.
 */
import type { IncomingMessage } from 'node:http'
import type { Transform } from 'node:stream'
import { RequestAbortedError } from '../errors.ts'
import { link } from '../streams.ts'
import type { VerifiedRequest } from './auth/sigv4.ts'
import { type BodyExpectations, BodyTally, checkedBody } from './body-check.ts'
import { CHECKSUM_ALGORITHMS, type ChecksumAlgorithm, isChecksumAlgorithm } from './checksums.ts'
import { ChunkedDecoder } from './chunked.ts'
import { S3Error, notImplemented } from './errors.ts'
import { headerOf } from './headers.ts'
import { type QueryBag, single } from './query.ts'

export interface OpenedBody {
  body: Transform
  /** The decoded length the client declared, when it did. */
  size?: number
}

function declaredLength(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,16}$/.test(value.trim())) throw new S3Error('InvalidArgument', `invalid ${name}`)
  return Number(value)
}

/** The `x-amz-checksum-<alg>` header (or query parameter of a presigned URL), if one was sent (two is one too many). */
function checksumHeader(incoming: IncomingMessage, params: QueryBag): { algorithm: ChecksumAlgorithm; expected: string } | undefined {
  let found: { algorithm: ChecksumAlgorithm; expected: string } | undefined
  for (const algorithm of CHECKSUM_ALGORITHMS) {
    const value = headerOf(incoming, `x-amz-checksum-${algorithm}`) ?? single(params, `x-amz-checksum-${algorithm}`)
    if (typeof value !== 'string') continue
    if (found) throw new S3Error('InvalidRequest', 'expecting a single x-amz-checksum- header')
    found = { algorithm, expected: value.trim() }
  }
  if (!found && incoming.headers['x-amz-checksum-crc64nvme'] !== undefined) throw notImplemented('the CRC64NVME checksum')
  return found
}

/** The trailer `x-amz-trailer` announces: one `x-amz-checksum-<alg>` of the algorithms above. */
function announcedTrailer(incoming: IncomingMessage): ChecksumAlgorithm | undefined {
  const value = headerOf(incoming, 'x-amz-trailer')
  if (value === undefined) return undefined
  const name = value.trim().toLowerCase()
  const algorithm = name.startsWith('x-amz-checksum-') ? name.slice('x-amz-checksum-'.length) : ''
  if (!isChecksumAlgorithm(algorithm)) throw new S3Error('InvalidRequest', `unsupported x-amz-trailer "${name}" (x-amz-checksum-crc32, -crc32c, -sha1 or -sha256)`)
  return algorithm
}

/**
 * Opens the body of a verified request. `limit` bounds the decoded bytes (EntityTooLarge).
 *
 * @example
 * const { body, size } = openBody(incoming, verified, maxUploadSize)
 * await objects.write(store, key, body, { size, ... })
 */
export function openBody(incoming: IncomingMessage, verified: VerifiedRequest, limit: number, params: QueryBag = {}): OpenedBody {
  const payload = verified.payload ?? 'UNSIGNED-PAYLOAD'
  const contentLength = declaredLength(incoming.headers['content-length'], 'Content-Length')
  const md5 = headerOf(incoming, 'content-md5')
  const streaming = payload.startsWith('STREAMING-')
  let decoder: Transform
  let size: number | undefined
  if (!streaming) {
    const signed = /^[0-9a-f]{64}$/.test(payload) ? payload : undefined
    if (!signed && payload !== 'UNSIGNED-PAYLOAD') throw new S3Error('InvalidArgument', 'x-amz-content-sha256 must be a hex SHA-256, UNSIGNED-PAYLOAD or a STREAMING- mode')
    size = contentLength
    const expect: BodyExpectations = { size, limit, sha256: signed, md5, checksum: checksumHeader(incoming, params) }
    decoder = checkedBody(expect)
  } else {
    const signedChunks = payload === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' || payload === 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
    const trailer = payload.endsWith('-TRAILER')
    if (!signedChunks && payload !== 'STREAMING-UNSIGNED-PAYLOAD-TRAILER') {
      if (payload.startsWith('STREAMING-AWS4-ECDSA')) throw notImplemented('SigV4a (ECDSA) signing')
      throw new S3Error('InvalidArgument', `unknown x-amz-content-sha256 "${payload.slice(0, 64)}"`)
    }
    size = declaredLength(headerOf(incoming, 'x-amz-decoded-content-length'), 'x-amz-decoded-content-length')
    const trailerAlgorithm = trailer ? announcedTrailer(incoming) : undefined
    const checksum = trailerAlgorithm ? { algorithm: trailerAlgorithm } : checksumHeader(incoming, params)
    const tally = new BodyTally({ size, limit, md5, checksum })
    decoder = new ChunkedDecoder({
      signing: signedChunks ? { seed: verified.signature, longDate: verified.longDate, scope: verified.scope, signString: verified.signString } : undefined,
      trailer,
      checksumTrailer: trailerAlgorithm && `x-amz-checksum-${trailerAlgorithm}`,
      tally,
    })
  }
  if (size !== undefined && size > limit) throw new S3Error('EntityTooLarge', `your proposed upload exceeds the maximum allowed size (${limit} bytes)`, { headers: { Connection: 'close' } })
  return { body: link(incoming, decoder, { prematureClose: () => new RequestAbortedError('client closed the connection during the upload') }), size }
}

/** Reads a small body (an XML request) whole, checked like any other, refusing more than `max` bytes. */
export async function readSmallBody(incoming: IncomingMessage, verified: VerifiedRequest, max: number): Promise<Buffer> {
  const { body } = openBody(incoming, verified, max)
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
