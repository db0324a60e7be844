import { Readable } from 'node:stream'
import type { ObjectMeta } from '../stores/types.ts'
import { type Bytes, keep } from './bytes.ts'

/**
 * One upstream read shared by every concurrent reader of a key (singleflight).
 *
 * The fill is owned by the gateway, not by any client: it reads the upstream body to the
 * end into memory (it is only used for objects ≤ `max_object_size`), and each reader gets
 * its own stream that replays the chunks received so far and then follows the live ones.
 * A reader that disconnects only drops its own stream; the others and the cache still get
 * every byte. An upstream error reaches every reader that is still attached.
 */
export class Fill {
  readonly #chunks: Buffer[] = []
  #received = 0
  #done = false
  #error: Error | undefined
  readonly #waiting = new Set<() => void>()
  /** Replaced once at most, before any reader sees it (an untyped object typed by its first bytes). */
  meta: ObjectMeta

  constructor(meta: ObjectMeta) {
    this.meta = meta
  }

  /** Feeds the upstream body into the fill; resolves with the whole body once it ends intact. */
  async consume(upstream: Readable): Promise<Bytes> {
    try {
      for await (const chunk of upstream) {
        this.#chunks.push(chunk as Buffer)
        this.#received += (chunk as Buffer).byteLength
        if (this.#received > this.meta.size) throw new Error(`upstream sent more than the ${this.meta.size} bytes it announced`)
        this.#wake()
      }
      if (this.#received !== this.meta.size) throw new Error(`upstream body ended after ${this.#received} of ${this.meta.size} bytes`)
    } catch (error) {
      this.#error = error instanceof Error ? error : new Error(String(error))
      this.#wake()
      throw this.#error
    }
    this.#done = true
    this.#wake()
    return keep(this.#chunks, this.#received)
  }

  /**
   * The first `bytes` bytes (fewer if the object is smaller), once they have arrived; rejects
   * if the fill fails first. Lets a caller hold its response headers until the body is known
   * to start (a failure is then still an error status) or sniff the type from magic bytes.
   */
  async head(bytes: number): Promise<Buffer> {
    const wanted = Math.min(bytes, this.meta.size)
    while (this.#received < wanted && !this.#done && !this.#error) {
      await new Promise<void>((resolve) => this.#waiting.add(resolve))
    }
    if (this.#error && this.#received < wanted) throw this.#error
    const first: Buffer[] = []
    for (let i = 0, got = 0; got < wanted; got += this.#chunks[i]!.byteLength, i++) first.push(this.#chunks[i]!)
    return Buffer.concat(first).subarray(0, wanted)
  }

  /** A new reader: every byte from the start, at the reader's own pace. */
  subscribe(): Readable {
    let index = 0
    const chunks = this.#chunks
    const waiting = this.#waiting
    const fill = this
    const stream = new Readable({
      read() {
        pump()
      },
      destroy(error, callback) {
        waiting.delete(pump)
        callback(error)
      },
    })
    function pump() {
      while (index < chunks.length) {
        if (!stream.push(chunks[index++])) return
      }
      if (fill.#error) stream.destroy(fill.#error)
      else if (fill.#done) stream.push(null)
      else waiting.add(pump)
    }
    return stream
  }

  #wake(): void {
    if (this.#waiting.size === 0) return
    const waiters = [...this.#waiting]
    this.#waiting.clear()
    for (const waiter of waiters) waiter()
  }
}
