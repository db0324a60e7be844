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
  /** Set when a PUT replaced the object mid-fill: finish serving, but never cache. */
  stale = false
  readonly meta: ObjectMeta

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
