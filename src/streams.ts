import { type Duplex, Transform, type Readable, type TransformCallback } from 'node:stream'
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
  // A slice may wait a moment for its reader (a multipart part opened before the headers go
  // out): a source failing meanwhile must not be an unhandled 'error' event.
  return holdErrors(source.pipe(slice))
}

/**
 * Fails `stream` with `onIdle()`'s error when no data arrives for `ms` while it is being read.
 * For bodies the gateway reads at full speed itself (fills, pages): a store that stops
 * sending mid-body must not wedge every reader waiting on that fill. For a body read at the
 * pace of a client, `consumerBehind()` says when the silence is the reader's doing (its
 * buffers are full): then the clock starts again instead.
 */
export function failWhenIdle(stream: Readable, ms: number, onIdle: () => Error, consumerBehind?: () => boolean): Readable {
  let timer: NodeJS.Timeout | undefined
  const arm = () => {
    clearTimeout(timer)
    timer = setTimeout(() => (consumerBehind?.() ? arm() : stream.destroy(onIdle())), ms)
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

/** For `'error'` listeners whose only job is to keep an error from stopping the process. */
const keepOnStream = () => {}

/**
 * Keeps an error of `stream` from being an unhandled 'error' event (which stops the process)
 * while nobody reads it yet: an upstream body handed back before its consumer attaches, whose
 * connection resets or whose signal aborts meanwhile. The stream is still destroyed with the
 * error (`errored`), and a consumer that attaches later sees it.
 */
function holdErrors<T extends Readable>(stream: T): T {
  stream.on('error', keepOnStream)
  return stream
}

/**
 * Pipes `source` into `sink` so that neither can fail unobserved, from this moment on, however
 * long the sink then waits for a consumer (an upload waits on awaits before the store reads it):
 * - an error of the source, or a source that closes before its end (a client gone mid-body),
 *   destroys the sink with that error, where the sink's consumer will see it;
 * - an error of the sink itself (a limit it enforces) is held on the sink (`errored`) for its
 *   consumer, instead of being an unhandled 'error' event that stops the process;
 * - a sink that closes early stops the flow: the source is unpiped and paused, or destroyed
 *   when `destroySource` is set. A request body is not destroyed: that would also cut the
 *   socket before the error response goes out, so the HTTP layer decides what to do with it.
 */
export function link<T extends Duplex>(source: Readable, sink: T, options: { destroySource?: boolean; prematureClose?: () => Error } = {}): T {
  const prematureClose = options.prematureClose ?? (() => new Error('source closed before its end'))
  const onSourceError = (error: Error) => sink.destroy(error)
  const onSourceClose = () => {
    if (!source.readableEnded) sink.destroy(source.errored ?? prematureClose())
  }
  // A source that already ended badly (a client gone during an await before this) has had
  // its 'close': fail the sink now, or its consumer would wait for bytes forever.
  if (source.destroyed && !source.readableEnded) {
    sink.destroy(source.errored ?? prematureClose())
    holdErrors(sink)
    return sink
  }
  source.on('error', onSourceError)
  source.once('close', onSourceClose)
  // Kept for the sink's lifetime: a consumer that attaches later adds its own listener, and a
  // consumer that attaches to an already destroyed sink gets `sink.errored` from it.
  holdErrors(sink)
  sink.once('close', () => {
    source.off('close', onSourceClose)
    if (source.readableEnded) return
    source.unpipe(sink)
    if (options.destroySource) source.destroy()
    else source.pause()
  })
  return source.pipe(sink)
}

/**
 * A disk cache body, once its file is open; an entry evicted or replaced between the lookup
 * and the open (ENOENT) is read through `fallback` instead (the store, or the page again).
 */
export async function openOrElse<T>(body: Readable, fallback: () => Promise<T>): Promise<Readable | T> {
  try {
    await whenReadable(body)
    return body
  } catch (error) {
    if (!isMissingFile(error)) throw error
  }
  return fallback()
}
