import { whenReadable } from '../streams.ts'
import { adminOf } from './admin.ts'
import { HedgeBudget } from './hedge-budget.ts'
import { LatencySketch } from './latency-sketch.ts'
import type { ConditionalGetOptions, GetOptions, GetResult, NotModified, Store } from './types.ts'

type Answer = GetResult | NotModified | null

/** The calls of `Telemetry` this decorator makes. */
export interface HedgeMetrics {
  hedgeSent(store: string): void
  hedgeWon(store: string): void
  /** The current hedge threshold in ms (undefined: not learned yet). */
  hedgeThreshold(store: string, ms: number | undefined): void
}

export interface HedgeOptions {
  /** Hedge a GET that has no headers after this quantile of recent times to headers; 0: off. */
  quantile: number
  /** Samples the estimate needs before any hedge. */
  minSamples: number
  /** At most this fraction of the GETs of a sliding minute are hedged. */
  maxRatio: number
  /**
   * Where the second attempt goes (default: the same store). The seam for fallback stores:
   * "the next store in the ranking", chosen when the hedge is sent.
   */
  hedgeTo?: () => Store
  telemetry?: HedgeMetrics
  /** The clock, in ms (default `performance.now`): the sketch's refresh and the budget. */
  now?: () => number
}

/** Why the attempt that did not answer first was aborted. */
export class HedgeLostError extends Error {
  override name = 'HedgeLostError'
}

interface Attempt {
  controller: AbortController
  started: number
  pending: Promise<Answer>
}

/**
 * An answer nobody will read: release its body (and its socket). Its signal was aborted, so
 * the body may already be failing with an AbortError (a stream made with an aborted signal
 * errors on the next tick): that error has no reader and must not become uncaught.
 */
function discard(late: Answer): void {
  if (!late || !('body' in late)) return
  late.body.on('error', () => {})
  late.body.destroy()
}

/**
 * A store whose GETs are hedged (Dean & Barroso, "The Tail at Scale", CACM 2013): a GET with
 * no response headers after the `quantile` of this store's recent times to headers gets one
 * more identical GET; the first to answer (a 404, a 304, or an object whose first body byte
 * has arrived) wins and the other is aborted through its own signal. A failed attempt, or one
 * whose body fails before its first byte, is not an answer while the other is still pending.
 * HEAD and PUT pass through. With `quantile` 0 the store is returned as it is.
 *
 * A winner whose body fails after its first byte is not replaced by the other attempt (already
 * aborted; bytes may have reached a client): the caller sees the failure, as without hedging.
 *
 * @example
 * const store = withHedge(createS3Store({ ... }), { quantile: 0.99, minSamples: 100, maxRatio: 0.05, telemetry })
 */
export function withHedge(store: Store, options: HedgeOptions): Store {
  const { quantile, minSamples, maxRatio, hedgeTo = () => store, telemetry } = options
  if (!(quantile >= 0 && quantile < 1)) throw new TypeError(`withHedge: quantile must be in [0, 1), got ${quantile}`)
  if (!(Number.isInteger(minSamples) && minSamples >= 1)) throw new TypeError(`withHedge: minSamples must be an integer ≥ 1, got ${minSamples}`)
  if (quantile === 0) return store
  const now = options.now ?? (() => performance.now())
  const { id } = store
  const sketch = new LatencySketch({ now })
  const budget = new HedgeBudget(maxRatio, now)

  /** The hedge delay in ms, once the estimate holds `minSamples` samples. */
  function threshold(): number | undefined {
    const ms = sketch.samples >= minSamples ? sketch.quantile(quantile) : undefined
    telemetry?.hedgeThreshold(id, ms)
    return ms
  }

  function attempt(target: Store, key: string, opts: GetOptions): Attempt {
    const controller = new AbortController()
    const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal
    const started = now()
    let pending: Promise<Answer>
    try {
      // Called synchronously, as `withDeadline` does: the store has its signal at once.
      pending = target.get(key, { ...opts, signal } as ConditionalGetOptions)
    } catch (error) {
      pending = Promise.reject(error)
    }
    return { controller, started, pending }
  }

  /** Races the first attempt against a hedge sent at `delayMs`. */
  function race(key: string, opts: GetOptions, delayMs: number): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      const attempts: Attempt[] = []
      let settled = false
      let failed = 0
      let firstError: unknown
      let timer: NodeJS.Timeout | undefined

      const start = (target: Store, hedge: boolean) => {
        const current = attempt(target, key, opts)
        attempts.push(current)
        const win = (answer: Answer) => {
          if (settled) return discard(answer)
          settled = true
          clearTimeout(timer)
          sketch.record(now() - current.started)
          if (hedge) telemetry?.hedgeWon(id)
          for (const other of attempts) if (other !== current) other.controller.abort(new HedgeLostError(`store ${id}: the other GET answered first`))
          resolve(answer)
        }
        const fail = (error: unknown) => {
          if (settled) return
          if (failed++ === 0) firstError = error
          // Still waiting for the other attempt (or about to send one): not over yet.
          if (failed < attempts.length) return
          settled = true
          clearTimeout(timer)
          reject(firstError)
        }
        current.pending.then((answer) => {
          if (settled || !answer || !('body' in answer)) return win(answer)
          // An attempt wins with its first body byte (or its end), not its headers: one whose
          // body fails before any byte has sent nothing to anyone, so the other is still used.
          whenReadable(answer.body).then(
            () => win(answer),
            (error: unknown) => {
              discard(answer)
              fail(error)
            },
          )
        }, fail)
      }

      start(store, false)
      timer = setTimeout(() => {
        if (settled || opts.signal?.aborted || !budget.tryHedge()) return
        let target: Store
        try {
          target = hedgeTo()
        } catch {
          return // No store to hedge to (e.g. every other one is down): the first attempt goes on.
        }
        telemetry?.hedgeSent(id)
        start(target, true)
      }, delayMs)
    })
  }

  function get(key: string, opts: ConditionalGetOptions): Promise<GetResult | NotModified | null>
  function get(key: string, opts?: GetOptions): Promise<GetResult | null>
  async function get(key: string, opts: GetOptions & { ifNoneMatch?: string } = {}): Promise<Answer> {
    budget.noteGet()
    const delayMs = threshold()
    if (delayMs !== undefined) return race(key, opts, delayMs)
    const started = now()
    const answer = await store.get(key, opts as ConditionalGetOptions)
    sketch.record(now() - started)
    return answer
  }

  const close = store.close?.bind(store)
  // list, delete, copy and multipart are not hedged: they write, or are not on the read path.
  return { type: store.type, id, head: store.head.bind(store), get, put: store.put.bind(store), ...adminOf(store), ...(close && { close }) }
}
