/**
 * The aws-chunked content encoding (AWS docs "Signature Calculations for the Authorization
 * Header: Transferring Payload in Multiple Chunks" and "… Including Trailing Headers"), decoded
 * as a stream with bounded buffers:
 *
 *   <hex size>[;chunk-signature=<sig>]\r\n<bytes>\r\n … 0[;chunk-signature=<sig>]\r\n
 *   [x-amz-checksum-crc32:<b64>\r\n[x-amz-trailer-signature:<sig>\r\n]]\r\n
 *
 * Signed chunks chain their signatures from the request's seed signature. Bytes of a chunk flow
 * on before its signature is checked (it covers the whole chunk), but any failure — a signature,
 * the framing, a checksum — fails the stream before it ends, so no store commits the upload.
 */
import { createHash, type Hash } from 'node:crypto'
import { Transform, type TransformCallback } from 'node:stream'
import { equalHex } from './auth/hmac.ts'
import type { BodyTally } from './body-check.ts'
import { S3Error } from './errors.ts'

/** A chunk header or trailer line longer than this is refused (a real one is under 200 bytes). */
export const MAX_LINE = 4096
/** Chunks larger than this are refused (SDKs send 64 KiB; 16 MiB leaves room for others). */
export const MAX_CHUNK = 16 * 2 ** 20
/** Trailer lines at most. */
const MAX_TRAILERS = 16
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'

export interface ChunkSigning {
  /** The request's signature: the first chunk's "previous signature". */
  seed: string
  longDate: string
  scope: string
  /** Hex HMAC with the request's signing key (sigv4.ts `VerifiedRequest.signString`). */
  signString(text: string): string
}

export interface ChunkedOptions {
  /** Chunk signatures to check (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]); none for STREAMING-UNSIGNED-PAYLOAD-TRAILER. */
  signing?: ChunkSigning
  /** Trailing headers are expected (the `-TRAILER` modes); their checksum goes to `tally.settle`. */
  trailer: boolean
  /** The trailer that carries the checksum (`x-amz-trailer`), lower case. */
  checksumTrailer?: string
  tally: BodyTally
}

type State = 'size' | 'data' | 'data-end' | 'trailer' | 'done'

const malformed = (why: string) => new S3Error('InvalidArgument', `malformed aws-chunked body: ${why}`)
const badSignature = () => new S3Error('SignatureDoesNotMatch', 'a chunk signature of the aws-chunked body does not match')


export class ChunkedDecoder extends Transform {
  readonly #options: ChunkedOptions
  #state: State = 'size'
  #line: Buffer[] = []
  #lineLength = 0
  #remaining = 0
  #chunkSignature?: string
  #chunkHash?: Hash
  #previous: string | undefined
  readonly #trailers: [string, string][] = []

  constructor(options: ChunkedOptions) {
    super()
    this.#options = options
    this.#previous = options.signing?.seed
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#consume(chunk)
    } catch (error) {
      return callback(error as Error)
    }
    callback()
  }

  override _flush(callback: TransformCallback): void {
    if (this.#state !== 'done') return callback(new S3Error('IncompleteBody', 'the aws-chunked body ended before its final chunk'))
    try {
      this.#options.tally.settle(this.#checksumFromTrailer())
    } catch (error) {
      return callback(error as Error)
    }
    callback()
  }

  #consume(buffer: Buffer): void {
    let offset = 0
    while (offset < buffer.length) {
      if (this.#state === 'data') {
        const take = Math.min(this.#remaining, buffer.length - offset)
        const data = buffer.subarray(offset, offset + take)
        offset += take
        this.#remaining -= take
        this.#options.tally.add(data)
        this.#chunkHash?.update(data)
        this.push(data)
        if (this.#remaining === 0) {
          this.#checkChunk()
          this.#state = 'data-end'
        }
        continue
      }
      const newline = buffer.indexOf(10, offset)
      const end = newline === -1 ? buffer.length : newline + 1
      this.#lineLength += end - offset
      if (this.#lineLength > MAX_LINE) throw malformed(`a line is longer than ${MAX_LINE} bytes`)
      this.#line.push(buffer.subarray(offset, end))
      offset = end
      if (newline === -1) return
      const line = Buffer.concat(this.#line, this.#lineLength)
      this.#line = []
      this.#lineLength = 0
      if (line.length < 2 || line[line.length - 2] !== 13) throw malformed('lines must end in CRLF')
      this.#onLine(line.toString('latin1', 0, line.length - 2))
    }
  }

  #onLine(line: string): void {
    switch (this.#state) {
      case 'size':
        return this.#onSize(line)
      case 'data-end':
        if (line !== '') throw malformed('a chunk is longer than its size')
        this.#state = 'size'
        return
      case 'trailer':
        return this.#onTrailer(line)
      default:
        throw malformed('bytes after the end of the body')
    }
  }

  #onSize(line: string): void {
    const semicolon = line.indexOf(';')
    const hex = semicolon === -1 ? line : line.slice(0, semicolon)
    if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) throw malformed('a chunk size must be hexadecimal')
    const size = Number.parseInt(hex, 16)
    if (size > MAX_CHUNK) throw malformed(`a chunk is larger than ${MAX_CHUNK} bytes`)
    if (this.#options.signing) {
      const m = /^chunk-signature=([0-9a-f]{64})$/.exec(semicolon === -1 ? '' : line.slice(semicolon + 1))
      if (!m) throw malformed('each chunk needs a chunk-signature')
      this.#chunkSignature = m[1]
      this.#chunkHash = createHash('sha256')
    }
    if (size === 0) {
      this.#checkChunk()
      this.#state = 'trailer'
      return
    }
    this.#remaining = size
    this.#state = 'data'
  }

  #checkChunk(): void {
    const signing = this.#options.signing
    if (!signing) return
    const digest = this.#chunkHash!.digest('hex')
    const text = `AWS4-HMAC-SHA256-PAYLOAD\n${signing.longDate}\n${signing.scope}\n${this.#previous}\n${EMPTY_SHA256}\n${digest}`
    const expected = signing.signString(text)
    if (!equalHex(expected, this.#chunkSignature!)) throw badSignature()
    this.#previous = expected
  }

  #onTrailer(line: string): void {
    if (line === '') {
      this.#checkTrailerSignature()
      this.#state = 'done'
      return
    }
    if (!this.#options.trailer) throw malformed('trailing headers were not announced (x-amz-content-sha256 without -TRAILER)')
    if (this.#trailers.length >= MAX_TRAILERS) throw malformed('too many trailing headers')
    const colon = line.indexOf(':')
    if (colon <= 0) throw malformed('a trailing header must be name:value')
    this.#trailers.push([line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()])
  }

  /** STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER: the trailers are signed too, chained on the last chunk. */
  #checkTrailerSignature(): void {
    const signing = this.#options.signing
    if (!signing || !this.#options.trailer) return
    const signature = this.#trailers.find(([name]) => name === 'x-amz-trailer-signature')?.[1]
    if (!signature) throw malformed('the trailer signature is missing')
    const text = this.#trailers
      .filter(([name]) => name !== 'x-amz-trailer-signature')
      .map(([name, value]) => `${name}:${value}\n`)
      .join('')
    const digest = createHash('sha256').update(text).digest('hex')
    const expected = signing.signString(`AWS4-HMAC-SHA256-TRAILER\n${signing.longDate}\n${signing.scope}\n${this.#previous}\n${digest}`)
    if (!equalHex(expected, signature)) throw badSignature()
  }

  #checksumFromTrailer(): string | undefined {
    const name = this.#options.checksumTrailer
    return name === undefined ? undefined : this.#trailers.find(([trailer]) => trailer === name)?.[1]
  }
}
