import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { RequestAbortedError } from '../errors.ts'
import type { Logger } from '../log.ts'

export interface UploadRateOptions {
  /** Bytes per second an upload must average over each window; 0 turns the guard off. */
  minBytesPerSecond: number
  /** Length of the window the rate is measured over, in ms. */
  windowMs: number
  logger: Logger
  /** Called for every upload cut (metrics). */
  onCut?: () => void
  /** Current time in ms, monotonic (injectable for tests). */
  now?: () => number
}

interface Upload {
  incoming: IncomingMessage
  socket: Socket
  /** Start of the current window, and the socket's byte count then. */
  since: number
  bytes: number
}

/**
 * Cuts request bodies that arrive slower than a minimum rate (slowloris on the body: a
 * client that trickles a few bytes a second holds a connection and an upload for hours).
 * Apache's mod_reqtimeout does the same (`body=20,MinRate=500`).
 *
 * It never touches the request stream: a 'data' listener would switch it to flowing mode
 * under the handler. It polls the socket's `bytesRead` from one unref'd interval shared by
 * every upload in progress. While the socket is paused the gateway is the one not reading
 * (its buffer is full because the store is slow, or the handler has not started reading
 * yet), so the window restarts then: backpressure is never blamed on the client.
 *
 * @example
 * const guard = new UploadRateGuard({ minBytesPerSecond: 1024, windowMs: 30_000, logger })
 * const unwatch = guard.watch(incoming)
 * try { await store.put(key, incoming) } finally { unwatch() }
 */
export class UploadRateGuard {
  readonly #rate: number
  readonly #windowMs: number
  readonly #tickMs: number
  readonly #logger: Logger
  readonly #onCut: (() => void) | undefined
  readonly #now: () => number
  readonly #uploads = new Set<Upload>()
  #timer: NodeJS.Timeout | undefined

  constructor(options: UploadRateOptions) {
    const { minBytesPerSecond, windowMs } = options
    if (!(Number.isFinite(minBytesPerSecond) && minBytesPerSecond > 0)) throw new TypeError('minBytesPerSecond must be a positive number')
    if (!(Number.isFinite(windowMs) && windowMs > 0)) throw new TypeError('windowMs must be a positive number')
    this.#rate = minBytesPerSecond
    this.#windowMs = windowMs
    // Several looks per window, so a stall is seen within a quarter window of its end.
    this.#tickMs = Math.min(1000, Math.max(50, windowMs / 4))
    this.#logger = options.logger
    this.#onCut = options.onCut
    this.#now = options.now ?? (() => performance.now())
  }

  /** Watches one request body until it is complete, cut, or the returned function is called. */
  watch(incoming: IncomingMessage): () => void {
    const upload: Upload = { incoming, socket: incoming.socket, since: this.#now(), bytes: incoming.socket.bytesRead }
    this.#uploads.add(upload)
    this.#timer ??= setInterval(() => this.check(), this.#tickMs).unref()
    return () => this.#forget(upload)
  }

  /** Uploads being watched. */
  get size(): number {
    return this.#uploads.size
  }

  /** One look at every upload in progress (the interval calls it; tests may too). */
  check(): void {
    const at = this.#now()
    for (const upload of this.#uploads) {
      const { incoming, socket } = upload
      if (incoming.complete || incoming.destroyed || socket.destroyed) {
        this.#forget(upload)
        continue
      }
      const bytes = socket.bytesRead
      const elapsed = at - upload.since
      if (socket.isPaused() || (elapsed >= this.#windowMs && bytes - upload.bytes >= (this.#rate * elapsed) / 1000)) {
        upload.since = at
        upload.bytes = bytes
      } else if (elapsed >= this.#windowMs) {
        this.#cut(upload, bytes - upload.bytes, elapsed)
      }
    }
  }

  #cut(upload: Upload, received: number, elapsedMs: number): void {
    this.#forget(upload)
    this.#onCut?.()
    const seconds = elapsedMs / 1000
    this.#logger.warn('upload too slow; connection closed', {
      client: upload.socket.remoteAddress ?? null,
      received,
      seconds: Math.round(seconds * 10) / 10,
      min_bytes_per_second: this.#rate,
    })
    upload.incoming.destroy(new RequestAbortedError(`upload slower than ${this.#rate} bytes/s (${received} bytes in ${seconds.toFixed(1)} s)`))
  }

  #forget(upload: Upload): void {
    this.#uploads.delete(upload)
    if (this.#uploads.size === 0 && this.#timer) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }
}
