/**
 * Reading an entry's body. A recovered entry is verified lazily, on its first read: a full
 * read streams through the hash and holds back its last chunk until the digest matches (on a
 * mismatch the stream errors instead, so a client never receives the complete body); a ranged
 * read of an unverified entry hashes the whole body first (streaming, no buffering) and sends
 * nothing if it mismatches.
 */
import { Readable, pipeline } from 'node:stream'
import type { ByteRange } from '../../stores/types.ts'
import { type DiskFs, type DiskOp, isFsError } from './fs.ts'
import type { Entry } from './types.ts'
import { ChecksumError, VerifyingPassThrough, digestOfStream } from './verify.ts'

const READ_CHUNK = 1024 * 1024

export interface ReadContext {
  fs: DiskFs
  /** Drops `entry` after a read or verify failure, unless it was replaced or evicted meanwhile. */
  fail(op: DiskOp, error: unknown, key: string, entry: Entry): Promise<void>
  /** Keeps a background promise until it settles (the tier's `close` waits for it). */
  track<T>(promise: Promise<T>): Promise<T>
}

/** The bytes of `range` (default: all) of `entry`'s body, verified as described above. */
export function openBody(ctx: ReadContext, key: string, entry: Entry, range?: ByteRange): Readable {
  const size = entry.meta.size
  if (range && !(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.start <= range.end && range.end < size)) {
    throw new RangeError(`range ${range.start}-${range.end} is outside 0-${size - 1}`)
  }
  if (size === 0) return Readable.from([])
  const wanted = range ?? { start: 0, end: size - 1 }
  if (entry.verified) return fileStream(ctx, key, entry, wanted)
  if (wanted.start === 0 && wanted.end === size - 1) {
    const verifier = new VerifyingPassThrough(entry.sha256, size, (error) => {
      if (error) void ctx.track(ctx.fail('verify', error, key, entry))
      else entry.verified = true
    })
    // Errors reach the caller through `verifier`; read errors are reported by fileStream.
    return pipeline(fileStream(ctx, key, entry, wanted), verifier, () => {})
  }
  return Readable.from(
    (async function* verifiedRange() {
      await verifyWhole(ctx, key, entry)
      yield* fileStream(ctx, key, entry, wanted)
    })(),
    { objectMode: false },
  )
}

function fileStream(ctx: ReadContext, key: string, entry: Entry, range: ByteRange): Readable {
  const stream = ctx.fs.createReadStream(entry.file, { start: entry.offset + range.start, end: entry.offset + range.end, highWaterMark: READ_CHUNK })
  stream.on('error', (error) => {
    if (isFsError(error)) void ctx.track(ctx.fail('read', error, key, entry))
  })
  return stream
}

/** Hashes the whole body once (concurrent callers share the run); rejects on a mismatch or read error. */
function verifyWhole(ctx: ReadContext, key: string, entry: Entry): Promise<void> {
  entry.verifying ??= (async () => {
    const digest = await digestOfStream(fileStream(ctx, key, entry, { start: 0, end: entry.meta.size - 1 }))
    if (digest !== entry.sha256) throw new ChecksumError(`checksum mismatch in ${entry.file}`)
    entry.verified = true
  })().catch(async (error: unknown) => {
    entry.verifying = undefined
    if (error instanceof ChecksumError) await ctx.fail('verify', error, key, entry)
    throw error
  })
  return entry.verifying
}
