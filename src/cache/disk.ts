import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import * as fsp from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream'
import type { Logger } from '../log.ts'
import type { ByteRange, ObjectMeta } from '../stores/types.ts'
import { type Bytes, byteLength, chunksOf } from './bytes.ts'
import { S3FifoCache } from './s3fifo.ts'
import type { Cache, CacheHit, TierStats } from './types.ts'

/**
 * Entry file layout (format 1): `CGD1`, a uint32 BE header length, the header as UTF-8 JSON
 * (`Header` below), then the body. One file per entry at `<root>/ab/cd/<sha256(key)>.<rand>`;
 * the random suffix makes every write a new file, so a hit handed out before an overwrite
 * keeps reading the version it was given (or fails with ENOENT), never a mix of two.
 */
const MAGIC = Buffer.from('CGD1')
const FORMAT_VERSION = 1
const PREFIX_BYTES = 8
const MAX_HEADER_BYTES = 64 * 1024
/** Files are charged in whole filesystem blocks: what they really take on disk. */
const BLOCK_BYTES = 4096
const READ_CHUNK = 1024 * 1024
const FAILURES_BEFORE_COOL_DOWN = 3
const COOL_DOWN_MS = 30_000
const RECOVERY_CONCURRENCY = 16
const EMPTY_SHA256 = createHash('sha256').digest('hex')
const FAN_NAME = /^[0-9a-f]{2}$/
const ENTRY_NAME = /^([0-9a-f]{64})\.[0-9a-f]{12}$/
const TEMP_NAME = /^[0-9a-f]{64}\.[0-9a-f]{12}\.tmp$/

export type DiskOp = 'write' | 'read' | 'verify' | 'delete' | 'recover'

/** The few fs calls the tier makes; injectable so tests can fail them (ENOSPC, EIO). */
export interface DiskFs {
  open(file: string, flags: string, mode?: number): Promise<FileHandle>
  rename(from: string, to: string): Promise<void>
  unlink(file: string): Promise<void>
  mkdir(dir: string, options: { recursive: true; mode?: number }): Promise<unknown>
  readdir(dir: string): Promise<string[]>
  stat(file: string): Promise<{ size: number }>
  createReadStream(file: string, options: { start: number; end: number; highWaterMark: number }): Readable
}

export const nodeFs: DiskFs = {
  open: fsp.open,
  rename: fsp.rename,
  unlink: fsp.unlink,
  mkdir: fsp.mkdir,
  readdir: (dir) => fsp.readdir(dir),
  stat: fsp.stat,
  createReadStream,
}

export interface DiskCacheOptions {
  /** Root directory; created if missing. Owned by this tier: one process per directory. */
  path: string
  /** Bound on the bytes the entry files take (header + body, rounded up to 4 KiB blocks). */
  maxBytes: number
  logger?: Logger
  /** Every disk error the tier absorbs (wire to `Telemetry.diskError`). */
  onError?: (op: DiskOp, error: unknown) => void
  fs?: DiskFs
  /** Clock for the write cool-down, in ms. */
  now?: () => number
}

export interface DiskCache extends Cache {
  /** Counts a use of `key` towards keeping it, without any I/O (the hybrid's memory hits). */
  touch(key: string): void
  /** Waits for background unlinks and writes. The directory stays valid for a later open. */
  close(): Promise<void>
}

interface Header {
  v: number
  key: string
  size: number
  contentType: string
  etag?: string
  lastModified?: string
  sha256: string
  /** Write time (ms): on recovery, the newest of two files for one key wins. */
  written: number
}

interface Entry {
  key: string
  file: string
  meta: ObjectMeta
  /** Where the body starts in the file. */
  offset: number
  fileSize: number
  sha256: string
  written: number
  /** The body has been hashed since this process opened the tier (or was written by it). */
  verified: boolean
  verifying?: Promise<void>
}

export class ChecksumError extends Error {
  override readonly name = 'ChecksumError'
}

const charge = (fileSize: number) => Math.ceil(Math.max(fileSize, 1) / BLOCK_BYTES) * BLOCK_BYTES
const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex')

/** Hashed between two turns of the event loop when a body is a chunk list. */
const HASH_SLICE = 4 * 1024 * 1024

/**
 * SHA-256 of a body without blocking the event loop for long: one Buffer is hashed by
 * WebCrypto on the thread pool (createHash would block ~40 ms on 64 MiB); a chunk list is
 * hashed a few MiB per turn of the loop.
 */
async function digestOf(body: Bytes): Promise<string> {
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
const isFsError = (error: unknown) => error instanceof Error && 'syscall' in error
const code = (error: unknown) => (error as NodeJS.ErrnoException | undefined)?.code

/**
 * The disk tier: whole objects in files, bounded in bytes, evicted by S3-FIFO, rebuilt from
 * its directory on open. Writes are atomic (temp file in the same directory, fsync, rename),
 * so a crash leaves either the old state or the complete new entry.
 *
 * Async factory: resolves once the index is rebuilt (headers read, temp files and torn or
 * unreadable entries deleted), so the gateway serves recovered entries from its first request.
 * Checksums are verified lazily, on the first read of each recovered entry: hashing every
 * body at start-up would read the whole cache (minutes for 10 GiB of cold disk) before
 * listening. A full read streams through the hash and holds back its last chunk until the
 * digest matches; on a mismatch the stream errors instead, so a client never receives the
 * complete body (with Content-Length framing it sees an aborted response), and the entry is
 * deleted. A ranged read of an unverified entry hashes the whole body first (streaming, no
 * buffering) and sends nothing if it mismatches.
 *
 * Disk errors never reach the caller: `set` resolves false, `get` resolves undefined, the
 * error goes to `onError` and the log. After 3 write failures in a row the tier stops writing
 * for 30 s (memory-only), then tries again.
 *
 * @example
 * const disk = await openDiskCache({ path: '/var/lib/cachegate/cache', maxBytes: 10 * 2 ** 30,
 *   onError: (op) => telemetry.diskError(op) })
 */
export async function openDiskCache(options: DiskCacheOptions): Promise<DiskCache> {
  const { maxBytes, logger, onError } = options
  if (typeof options.path !== 'string' || options.path === '') throw new TypeError('path must be a non-empty string')
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new TypeError('maxBytes must be a positive integer')
  const root = path.resolve(options.path)
  const fs = options.fs ?? nodeFs
  const now = options.now ?? Date.now
  const doomed: string[] = []
  const index = new S3FifoCache<string, Entry>({ maxBytes, onEvict: (_key, entry) => doomed.push(entry.file) })
  /** The write each key is waiting for; a delete or a newer set makes an older write moot. */
  const pending = new Map<string, object>()
  const background = new Set<Promise<unknown>>()
  const madeDirs = new Set<string>()
  let failuresInARow = 0
  let writesDisabledUntil = 0

  function report(op: DiskOp, error: unknown, fields: Record<string, unknown> = {}): void {
    logger?.warn('disk cache error; degrading', { op, err: error, ...fields })
    onError?.(op, error)
  }

  function track<T>(promise: Promise<T>): Promise<T> {
    background.add(promise)
    void promise.finally(() => background.delete(promise)).catch(() => {})
    return promise
  }

  async function unlinkQuietly(file: string): Promise<void> {
    try {
      await fs.unlink(file)
    } catch (error) {
      if (code(error) !== 'ENOENT') report('delete', error, { file })
    }
  }

  /** Unlinks the files of entries the index just dropped. */
  function reap(): Promise<void> {
    if (doomed.length === 0) return Promise.resolve()
    return track(Promise.all(doomed.splice(0).map(unlinkQuietly)).then(() => {}))
  }

  /** Drops `entry` after a read or verify failure, unless it was replaced or evicted meanwhile. */
  function fail(op: DiskOp, error: unknown, key: string, entry: Entry): Promise<void> {
    if (index.peek(key) !== entry) return Promise.resolve()
    report(op, error, { file: entry.file })
    index.delete(key)
    return reap()
  }

  function fileStream(key: string, entry: Entry, range: ByteRange): Readable {
    const start = entry.offset + range.start
    const stream = fs.createReadStream(entry.file, { start, end: entry.offset + range.end, highWaterMark: READ_CHUNK })
    stream.on('error', (error) => {
      if (isFsError(error)) void track(fail('read', error, key, entry))
    })
    return stream
  }

  function verifyWhole(key: string, entry: Entry): Promise<void> {
    entry.verifying ??= (async () => {
      const hash = createHash('sha256')
      for await (const chunk of fileStream(key, entry, { start: 0, end: entry.meta.size - 1 })) hash.update(chunk as Buffer)
      if (hash.digest('hex') !== entry.sha256) throw new ChecksumError(`checksum mismatch in ${entry.file}`)
      entry.verified = true
    })().catch(async (error: unknown) => {
      entry.verifying = undefined
      if (error instanceof ChecksumError) await fail('verify', error, key, entry)
      throw error
    })
    return entry.verifying
  }

  function openBody(key: string, entry: Entry, range?: ByteRange): Readable {
    const size = entry.meta.size
    if (range && !(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.start <= range.end && range.end < size)) {
      throw new RangeError(`range ${range.start}-${range.end} is outside 0-${size - 1}`)
    }
    if (size === 0) return Readable.from([])
    const wanted = range ?? { start: 0, end: size - 1 }
    if (entry.verified) return fileStream(key, entry, wanted)
    if (wanted.start === 0 && wanted.end === size - 1) {
      const verifier = new VerifyingPassThrough(entry.sha256, size, (error) => {
        if (error) void track(fail('verify', error, key, entry))
        else entry.verified = true
      })
      // Errors reach the caller through `verifier`; read errors are reported by fileStream.
      return pipeline(fileStream(key, entry, wanted), verifier, () => {})
    }
    return Readable.from(
      (async function* verifiedRange() {
        await verifyWhole(key, entry)
        yield* fileStream(key, entry, wanted)
      })(),
      { objectMode: false },
    )
  }

  /** The entry a write will create, with its header bytes; no I/O yet. */
  async function encode(key: string, meta: ObjectMeta, body: Bytes): Promise<{ entry: Entry; head: Buffer }> {
    const hash = sha256(key)
    const file = path.join(root, hash.slice(0, 2), hash.slice(2, 4), `${hash}.${randomBytes(6).toString('hex')}`)
    const digest = await digestOf(body)
    const size = byteLength(body)
    const { contentType, etag, lastModified } = meta
    const header: Header = { v: FORMAT_VERSION, key, size, contentType, etag, lastModified: lastModified?.toISOString(), sha256: digest, written: now() }
    const json = Buffer.from(JSON.stringify(header))
    const head = Buffer.alloc(PREFIX_BYTES + json.byteLength)
    MAGIC.copy(head)
    head.writeUInt32BE(json.byteLength, 4)
    json.copy(head, PREFIX_BYTES)
    const entry: Entry = { key, file, meta: { ...meta }, offset: head.byteLength, fileSize: head.byteLength + size, sha256: header.sha256, written: header.written, verified: true }
    return { entry, head }
  }

  /** Temp file in the entry's own directory, fsync, rename: the entry name only ever holds a complete file. */
  async function write(file: string, head: Buffer, body: Bytes): Promise<void> {
    const dir = path.dirname(file)
    if (!madeDirs.has(dir)) {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 })
      madeDirs.add(dir)
    }
    const temp = `${file}.tmp`
    let handle: FileHandle | undefined
    try {
      handle = await fs.open(temp, 'wx', 0o600)
      for (const chunk of [head, ...chunksOf(body)]) {
        for (let done = 0; done < chunk.byteLength; ) done += (await handle.write(chunk, done)).bytesWritten
      }
      // fsync before rename: otherwise a crash can leave the new name on a file whose data never reached the disk.
      await handle.sync()
      await handle.close()
      handle = undefined
      await fs.rename(temp, file)
    } catch (error) {
      await handle?.close().catch(() => {})
      await fs.unlink(temp).catch(() => {})
      throw error
    }
  }

  /** Reads and checks one entry file's header; undefined (and the file deleted) when it is not servable. */
  async function load(file: string, hash: string): Promise<Entry | undefined> {
    let handle: FileHandle | undefined
    let reason: string
    try {
      handle = await fs.open(file, 'r')
      const fileSize = (await handle.stat()).size
      const head = Buffer.alloc(Math.min(fileSize, PREFIX_BYTES + MAX_HEADER_BYTES))
      const { bytesRead } = await handle.read(head, 0, head.byteLength, 0)
      const length = bytesRead >= PREFIX_BYTES && head.subarray(0, 4).equals(MAGIC) ? head.readUInt32BE(4) : -1
      const header = length >= 0 && PREFIX_BYTES + length <= bytesRead ? parseHeader(head.subarray(PREFIX_BYTES, PREFIX_BYTES + length)) : undefined
      const offset = PREFIX_BYTES + length
      if (!header) reason = 'unreadable header'
      else if (sha256(header.key) !== hash) reason = 'file name does not match its key'
      else if (fileSize !== offset + header.size) reason = `size ${fileSize} != ${offset + header.size} (torn or truncated)`
      else {
        const { key, size, contentType, etag, lastModified } = header
        const meta: ObjectMeta = { size, contentType }
        if (etag !== undefined) meta.etag = etag
        if (lastModified !== undefined) meta.lastModified = new Date(lastModified)
        return { key, file, meta, offset, fileSize, sha256: header.sha256, written: header.written, verified: false }
      }
    } catch (error) {
      reason = `unreadable: ${code(error) ?? String(error)}`
    } finally {
      await handle?.close().catch(() => {})
    }
    // Temp-then-rename never leaves such a file: it is damage (or another program's), worth a metric.
    report('recover', new Error(`dropping ${file}: ${reason}`), { file })
    await unlinkQuietly(file)
    return undefined
  }

  async function recover(): Promise<void> {
    await fs.mkdir(root, { recursive: true, mode: 0o700 })
    const candidates: [file: string, hash: string][] = []
    const list = (dir: string) =>
      fs.readdir(dir).catch((error: unknown) => {
        if (code(error) !== 'ENOTDIR') report('recover', error, { dir })
        return [] as string[]
      })
    for (const a of (await fs.readdir(root)).filter((n) => FAN_NAME.test(n))) {
      for (const b of (await list(path.join(root, a))).filter((n) => FAN_NAME.test(n))) {
        const dir = path.join(root, a, b)
        for (const name of await list(dir)) {
          const match = ENTRY_NAME.exec(name)
          // Only names this tier writes are touched: anything else in the directory is left alone.
          if (match?.[1]?.startsWith(a + b)) candidates.push([path.join(dir, name), match[1]])
          else if (TEMP_NAME.test(name)) await unlinkQuietly(path.join(dir, name))
        }
      }
    }
    const loaded: Entry[] = []
    for (let i = 0; i < candidates.length; i += RECOVERY_CONCURRENCY) {
      const batch = candidates.slice(i, i + RECOVERY_CONCURRENCY)
      for (const entry of await Promise.all(batch.map(([file, hash]) => load(file, hash)))) if (entry) loaded.push(entry)
    }
    // Oldest first, so that when the bound shrank, S3-FIFO's small queue evicts the oldest.
    loaded.sort((x, y) => x.written - y.written)
    // Two files for one key (a crash between rename and unlinking the old one): the newer replaces the older.
    for (const entry of loaded) index.set(entry.key, entry, charge(entry.fileSize))
    await reap()
    logger?.info('disk cache ready', { path: root, entries: index.size, bytes: index.bytes, max_bytes: maxBytes })
  }

  await recover()

  function forget(key: string): Promise<void> {
    index.delete(key)
    return reap()
  }

  return {
    async get(key): Promise<CacheHit | undefined> {
      const entry = index.get(key)
      if (!entry) return undefined
      try {
        const { size } = await fs.stat(entry.file)
        if (size !== entry.fileSize) throw new Error(`entry file is ${size} bytes, expected ${entry.fileSize}`)
      } catch (error) {
        await fail('read', error, key, entry)
        return undefined
      }
      // Deleted or replaced while the stat ran: not a hit.
      if (index.peek(key) !== entry) return undefined
      return { tier: 'disk', meta: entry.meta, open: (range) => openBody(key, entry, range) }
    },

    async set(key, meta, body) {
      if (meta.size !== byteLength(body)) throw new TypeError(`meta.size ${meta.size} != body length ${byteLength(body)}`)
      const token = {}
      pending.set(key, token)
      // Whatever happens below, the caller meant to supersede the old copy: a refused set drops it.
      const refuse = async () => {
        if (pending.get(key) === token) {
          pending.delete(key)
          await forget(key)
        }
        return false
      }
      const { entry, head } = await encode(key, meta, body)
      const unreadable = entry.offset > PREFIX_BYTES + MAX_HEADER_BYTES // recovery would drop it
      if (unreadable || charge(entry.fileSize) > maxBytes || now() < writesDisabledUntil) return refuse()
      try {
        await track(write(entry.file, head, body))
        failuresInARow = 0
      } catch (error) {
        report('write', error, { file: entry.file })
        if (++failuresInARow >= FAILURES_BEFORE_COOL_DOWN) {
          writesDisabledUntil = now() + COOL_DOWN_MS
          failuresInARow = 0
          logger?.warn('disk cache writes paused after repeated failures', { cool_down_ms: COOL_DOWN_MS })
        }
        return refuse()
      }
      if (pending.get(key) !== token) {
        // Deleted or set again while this write ran: these bytes may be stale.
        await unlinkQuietly(entry.file)
        return false
      }
      pending.delete(key)
      index.set(key, entry, charge(entry.fileSize))
      await reap()
      return true
    },

    async delete(key) {
      pending.delete(key)
      await forget(key)
    },

    touch(key) {
      index.get(key)
    },

    stats(): Record<string, TierStats> {
      return { disk: { entries: index.size, bytes: index.bytes, maxBytes } }
    },

    async close() {
      while (background.size > 0) await Promise.allSettled([...background])
    },
  }
}

function parseHeader(bytes: Buffer): Header | undefined {
  let value: unknown
  try {
    value = JSON.parse(bytes.toString('utf8'))
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const h = value as Record<string, unknown>
  const optionalString = (v: unknown) => v === undefined || typeof v === 'string'
  const valid =
    h.v === FORMAT_VERSION &&
    typeof h.key === 'string' &&
    h.key !== '' &&
    typeof h.size === 'number' &&
    Number.isSafeInteger(h.size) &&
    h.size >= 0 &&
    typeof h.contentType === 'string' &&
    typeof h.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(h.sha256) &&
    (h.size > 0 || h.sha256 === EMPTY_SHA256) &&
    typeof h.written === 'number' &&
    Number.isFinite(h.written) &&
    optionalString(h.etag) &&
    optionalString(h.lastModified) &&
    (h.lastModified === undefined || !Number.isNaN(Date.parse(h.lastModified as string)))
  return valid ? (h as unknown as Header) : undefined
}

/**
 * Passes a full body through, hashing it, and holds back the latest chunk until the end: on a
 * digest or length mismatch it errors instead of sending that chunk, so a reader never gets
 * all `size` bytes of a corrupt body.
 */
class VerifyingPassThrough extends Transform {
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
