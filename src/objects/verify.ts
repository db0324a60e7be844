/**
 * Verify mode (`cache.verify_sample_rate`, `cache.verify_only`): S3 Cache's dry run. A sampled
 * hit is fetched again from the store in the background and compared with the cached bytes
 * (ETag, size, SHA-256); a mismatch is logged, counted and the entry dropped. Checks run at
 * most `concurrency` at a time: a sample taken while they are all busy is skipped (counted).
 */
import { digestOf, digestOfStream } from '../cache/disk/verify.ts'
import type { Fill } from '../cache/fill.ts'
import type { CacheHit } from '../cache/types.ts'
import type { Logger } from '../log.ts'
import type { Telemetry } from '../metrics.ts'
import type { ObjectMeta, Store } from '../stores/types.ts'

/** Background checks at once: each holds a store connection and hashes a body. */
export const VERIFY_CONCURRENCY = 4

export interface VerifierOptions {
  /** Share of hits checked (0–1). */
  rate: number
  concurrency?: number
  /** Default `Math.random`; tests pass a sequence. */
  random?: () => number
  telemetry: Telemetry
  logger: Logger
  /** Drops a cached object found to differ from the store (and what is known of it). */
  drop(ck: string): Promise<void>
}

/** What a comparison looks at: the object's ETag, size and digest on each side. */
interface Side {
  meta: ObjectMeta | undefined
  sha256: string | undefined
}

const digestOfHit = (hit: CacheHit): Promise<string> => (hit.tier === 'memory' ? digestOf(hit.body) : digestOfStream(hit.open()))

export class Verifier {
  readonly rate: number
  readonly #concurrency: number
  readonly #random: () => number
  readonly #options: VerifierOptions
  #running = 0
  readonly #checks = new Set<Promise<void>>()

  constructor(options: VerifierOptions) {
    this.rate = options.rate
    this.#concurrency = options.concurrency ?? VERIFY_CONCURRENCY
    this.#random = options.random ?? Math.random
    this.#options = options
  }

  /** Whether this hit is one of the sampled share (one comparison when the rate is 0). */
  sample(): boolean {
    return this.rate > 0 && this.#random() < this.rate
  }

  /** Fetches the object again and compares it with `hit`, in the background. */
  check(store: Store, key: string, ck: string, hit: CacheHit): void {
    this.#run(async () => {
      const got = await store.get(key, { op: 'verify', prefer: hit.meta.servedBy ?? store.id })
      const fresh: Side = got ? { meta: got.meta, sha256: await digestOfStream(got.body) } : { meta: undefined, sha256: undefined }
      const cached: Side = { meta: hit.meta, sha256: await digestOfHit(hit) }
      if (this.#compare(store, key, cached, fresh)) await this.#options.drop(ck)
    })
  }

  /**
   * `verify_only`: compares a hit with the fill that is replacing it (served from the store),
   * with no second GET. A mismatch needs no drop: the fill caches the store's bytes.
   */
  compareWithFill(store: Store, key: string, hit: CacheHit, fill: Fill): void {
    this.#run(async () => {
      const [cachedSha, freshSha] = await Promise.all([digestOfHit(hit), digestOfStream(fill.subscribe())])
      this.#compare(store, key, { meta: hit.meta, sha256: cachedSha }, { meta: fill.meta, sha256: freshSha })
    })
  }

  /** Checks in flight (tests and shutdown wait for them). */
  async settled(): Promise<void> {
    while (this.#checks.size > 0) await Promise.allSettled([...this.#checks])
  }

  /** True on a mismatch (logged and counted). */
  #compare(store: Store, key: string, cached: Side, fresh: Side): boolean {
    const same = fresh.meta !== undefined && cached.meta?.etag === fresh.meta.etag && cached.meta?.size === fresh.meta.size && cached.sha256 === fresh.sha256
    this.#options.telemetry.verifyCheck(same ? 'match' : 'mismatch')
    if (!same) {
      this.#options.logger.warn('verify: cached object differs from the store; dropped', {
        bucket: store.id,
        path: key,
        cached_etag: cached.meta?.etag ?? null,
        store_etag: fresh.meta?.etag ?? null,
        cached_size: cached.meta?.size ?? null,
        store_size: fresh.meta?.size ?? null,
      })
    }
    return !same
  }

  #run(check: () => Promise<void>): void {
    const { telemetry, logger } = this.#options
    if (this.#running >= this.#concurrency) {
      telemetry.verifyCheck('skipped')
      return
    }
    this.#running++
    const done = check()
      .catch((error: unknown) => {
        telemetry.verifyCheck('error')
        logger.warn('verify check failed', { err: error })
      })
      .finally(() => {
        this.#running--
        this.#checks.delete(done)
      })
    this.#checks.add(done)
  }
}
