import path from 'node:path'
import type { FileHandle } from 'node:fs/promises'
import type { Logger } from '../../log.ts'
import { type Bytes, chunksOf } from '../bytes.ts'
import { tempPath } from './format.ts'
import type { DiskFs } from './fs.ts'

const FAILURES_BEFORE_COOL_DOWN = 3
const COOL_DOWN_MS = 30_000

/**
 * Atomic entry writes, behind a breaker: after 3 failed writes in a row, `accepting` is false
 * for 30 s (the tier is memory-only meanwhile), then writes are tried again.
 */
export class AtomicWriter {
  readonly #fs: DiskFs
  readonly #now: () => number
  readonly #logger: Logger | undefined
  readonly #madeDirs = new Set<string>()
  #failuresInARow = 0
  #pausedUntil = 0

  constructor(fs: DiskFs, now: () => number, logger?: Logger) {
    this.#fs = fs
    this.#now = now
    this.#logger = logger
  }

  /** False while writes are paused after repeated failures. */
  get accepting(): boolean {
    return this.#now() >= this.#pausedUntil
  }

  /** Writes `head` then `body` to `file`, counting the outcome towards the breaker; rethrows failures. */
  async write(file: string, head: Buffer, body: Bytes): Promise<void> {
    try {
      await this.#write(file, head, body)
      this.#failuresInARow = 0
    } catch (error) {
      if (++this.#failuresInARow >= FAILURES_BEFORE_COOL_DOWN) {
        this.#pausedUntil = this.#now() + COOL_DOWN_MS
        this.#failuresInARow = 0
        this.#logger?.warn('disk cache writes paused after repeated failures', { cool_down_ms: COOL_DOWN_MS })
      }
      throw error
    }
  }

  /** Temp file in the entry's own directory, fsync, rename: the entry name only ever holds a complete file. */
  async #write(file: string, head: Buffer, body: Bytes): Promise<void> {
    const dir = path.dirname(file)
    if (!this.#madeDirs.has(dir)) {
      await this.#fs.mkdir(dir, { recursive: true, mode: 0o700 })
      this.#madeDirs.add(dir)
    }
    const temp = tempPath(file)
    let handle: FileHandle | undefined
    try {
      handle = await this.#fs.open(temp, 'wx', 0o600)
      for (const chunk of [head, ...chunksOf(body)]) {
        for (let done = 0; done < chunk.byteLength; ) done += (await handle.write(chunk, done)).bytesWritten
      }
      // fsync before rename: otherwise a crash can leave the new name on a file whose data never reached the disk.
      await handle.sync()
      await handle.close()
      handle = undefined
      await this.#fs.rename(temp, file)
    } catch (error) {
      await handle?.close().catch(() => {})
      await this.#fs.unlink(temp).catch(() => {})
      throw error
    }
  }
}
