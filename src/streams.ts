import { Transform, type Readable, type TransformCallback } from 'node:stream'
import type { ByteRange } from './stores/types.ts'

/**
 * The bytes `range.start..range.end` (inclusive) of `source`, as a stream. Once the range is
 * through, the source is destroyed so nothing more is read from it (an upstream body stops).
 * A source that ends short of the range is an error, never a silently truncated slice.
 */
export function sliceStream(source: Readable, range: ByteRange): Readable {
  let offset = 0
  let done = false
  const slice = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      if (done) return callback()
      const from = Math.max(range.start - offset, 0)
      const to = Math.min(range.end + 1 - offset, chunk.byteLength)
      offset += chunk.byteLength
      if (to > from) this.push(from === 0 && to === chunk.byteLength ? chunk : chunk.subarray(from, to))
      callback()
      if (offset > range.end) {
        done = true
        source.unpipe(slice)
        source.destroy()
        slice.end()
      }
    },
    flush(callback: TransformCallback) {
      callback(offset > range.end ? null : new Error(`source ended at byte ${offset}, before the range end ${range.end}`))
    },
  })
  source.once('error', (error) => slice.destroy(error))
  slice.once('close', () => {
    if (!source.destroyed) source.destroy()
  })
  return source.pipe(slice)
}

/**
 * Fails `stream` with `onIdle()`'s error when no data arrives for `ms` while it is being read.
 * For bodies the gateway reads at full speed itself (fills, pages): a store that stops
 * sending mid-body must not wedge every reader waiting on that fill.
 */
export function failWhenIdle(stream: Readable, ms: number, onIdle: () => Error): Readable {
  let timer: NodeJS.Timeout | undefined
  const arm = () => {
    clearTimeout(timer)
    timer = setTimeout(() => stream.destroy(onIdle()), ms)
    timer.unref()
  }
  arm()
  stream.on('data', arm)
  stream.once('close', () => clearTimeout(timer))
  return stream
}

/**
 * Resolves once `stream` has data to read (or has ended), rejects if it fails first. Lets a
 * caller learn that a file could not be opened before it sends any response headers.
 */
export function whenReadable(stream: Readable): Promise<void> {
  if (stream.readableLength > 0 || stream.readableEnded) return Promise.resolve()
  if (stream.destroyed) return Promise.reject(stream.errored ?? new Error('stream closed before it had data'))
  return new Promise((resolve, reject) => {
    const done = () => {
      cleanup()
      resolve()
    }
    const fail = (error: Error) => {
      cleanup()
      reject(error)
    }
    const closed = () => {
      if (stream.readableEnded) return done()
      fail(new Error('stream closed before it had data'))
    }
    const cleanup = () => {
      stream.off('readable', done)
      stream.off('end', done)
      stream.off('error', fail)
      stream.off('close', closed)
    }
    stream.once('readable', done)
    stream.once('end', done)
    stream.once('error', fail)
    stream.once('close', closed)
  })
}

/** A file that is gone: a disk cache entry evicted or replaced between lookup and open. */
export function isMissingFile(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
}
