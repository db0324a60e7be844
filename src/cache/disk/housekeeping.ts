import type { Logger } from '../../log.ts'
import { type DiskFs, type DiskOp, errorCode } from './fs.ts'

/**
 * The tier's background work and error reporting, shared by its modules: unlinks of dropped
 * files, writes in flight, and every absorbed disk error (logged and passed to `onError`).
 */
export class Housekeeper {
  readonly #fs: DiskFs
  readonly #logger: Logger | undefined
  readonly #onError: ((op: DiskOp, error: unknown) => void) | undefined
  readonly #background = new Set<Promise<unknown>>()
  /** Files of entries the index dropped, unlinked by the next `reap`. */
  readonly #doomed: string[] = []

  constructor(fs: DiskFs, logger?: Logger, onError?: (op: DiskOp, error: unknown) => void) {
    this.#fs = fs
    this.#logger = logger
    this.#onError = onError
  }

  report(op: DiskOp, error: unknown, fields: Record<string, unknown> = {}): void {
    this.#logger?.warn('disk cache error; degrading', { op, err: error, ...fields })
    this.#onError?.(op, error)
  }

  /** Keeps `promise` until it settles, so `settled()` waits for it. */
  track<T>(promise: Promise<T>): Promise<T> {
    this.#background.add(promise)
    void promise.finally(() => this.#background.delete(promise)).catch(() => {})
    return promise
  }

  async unlinkQuietly(file: string): Promise<void> {
    try {
      await this.#fs.unlink(file)
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') this.report('delete', error, { file })
    }
  }

  doom(file: string): void {
    this.#doomed.push(file)
  }

  /** Unlinks the files of entries dropped since the last call. */
  reap(): Promise<void> {
    if (this.#doomed.length === 0) return Promise.resolve()
    return this.track(Promise.all(this.#doomed.splice(0).map((file) => this.unlinkQuietly(file))).then(() => {}))
  }

  async settled(): Promise<void> {
    while (this.#background.size > 0) await Promise.allSettled([...this.#background])
  }
}
