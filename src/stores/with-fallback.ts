import type { Readable } from 'node:stream'
import { UpstreamError, type UpstreamErrorKind } from '../errors.ts'
import { adminOf } from './admin.ts'
import type { StoreHealth } from './store-health.ts'
import type { ConditionalGetOptions, GetOptions, GetResult, NotModified, ObjectMeta, Store } from './types.ts'

/** One store a bucket may read from, with the health object shared by every bucket that reads from it. */
export interface FallbackMember {
  store: Store
  health: StoreHealth
}

/** Failures that say the store is unwell (issue #12: connect, timeout, 5xx, reset). */
const COUNTED: ReadonlySet<UpstreamErrorKind> = new Set(['connect', 'timeout', 'server', 'io'])

/** Which failure to report when every store failed: the one that says most about the stores. */
const TELLING: readonly UpstreamErrorKind[] = ['auth', 'client', 'server', 'timeout', 'io', 'connect', 'unknown', 'aborted']

/**
 * A bucket whose reads may be answered by other stores holding the same keys. `primary` is the
 * bucket's own store (its id and type are the wrapper's, so cache keys stay the bucket's);
 * `fallbacks` follow in configured order. Each read goes to the best-ranked store whose breaker
 * lets it through (Cachey's score: position, decaying error rate, mean latency); a failure or a
 * "not found" moves on to the next (a replica may lag), and only "not found" from every store
 * asked is "not found". When no store could be asked or every one failed, the stores skipped by
 * their breakers are tried as a last resort. An answer from a fallback carries
 * `meta.servedBy` (for `X-CG-Status`). Writes go to the primary only.
 *
 * @example
 * const media = withFallback({ store: s3, health: healthOf('media') }, [{ store: azure, health: healthOf('media-eu') }])
 */
export function withFallback(primary: FallbackMember, fallbacks: readonly FallbackMember[]): Store {
  const members = [primary, ...fallbacks]
  const { id, type } = primary.store

  /**
   * The members, best first; a store whose breaker is due a probe goes first, or a store ranked
   * behind a healthy one (its error rate is high) would never get its probe.
   */
  function ranked(prefer?: string): FallbackMember[] {
    const scored = members.map((member, index) => {
      const { breaker } = member.health
      // The store that answered for this version comes first (its breaker still decides).
      if (prefer !== undefined && member.store.id === prefer) return { member, score: -2 }
      return { member, score: breaker.state === 'open' && breaker.available ? -1 : member.health.score(index) }
    })
    return scored.sort((a, b) => a.score - b.score).map((s) => s.member)
  }

  /** `call` on each store in rank order until one has the object; see the factory's comment. */
  async function read<T extends object>(signal: AbortSignal | undefined, prefer: string | undefined, call: (store: Store) => Promise<T | null>, mark: (answer: T, by: string) => T): Promise<T | null> {
    const errors: UpstreamError[] = []
    const skipped: FallbackMember[] = []
    let missing = false
    async function ask(member: FallbackMember): Promise<T | null | undefined> {
      const started = performance.now()
      try {
        const answer = await call(member.store)
        const latencyMs = performance.now() - started
        // A GET succeeds with its body's end: a body that fails mid-read (a reset, a stall) is
        // the store's failure too, and one a client abandoned says nothing either way.
        if (answer !== null && 'body' in answer) settleWithBody(answer.body as Readable, member, latencyMs)
        else member.health.ok(latencyMs)
        if (answer === null) {
          missing = true
          return undefined
        }
        return member === primary ? answer : mark(answer, member.store.id)
      } catch (error) {
        const counts = error instanceof UpstreamError && COUNTED.has(error.kind) && !signal?.aborted
        member.health.failed(counts)
        // The caller left, or a failure that is not the store's (a precondition): no other store can help.
        if (signal?.aborted || !(error instanceof UpstreamError)) throw error
        errors.push(error)
        return undefined
      }
    }
    for (const member of ranked(prefer)) {
      if (!member.health.breaker.tryAcquire()) {
        skipped.push(member)
        continue
      }
      const answer = await ask(member)
      if (answer !== undefined) return answer
    }
    if (missing && errors.length === 0) return null
    if (!missing) {
      for (const member of skipped) {
        const answer = await ask(member)
        if (answer !== undefined) return answer
      }
    }
    if (errors.length === 0) return null
    throw mostTelling(errors)
  }

  function head(key: string, opts?: { signal?: AbortSignal }): Promise<ObjectMeta | null> {
    return read(opts?.signal, undefined, (store) => store.head(key, opts), (meta, servedBy) => ({ ...meta, servedBy }))
  }

  function get(key: string, opts: ConditionalGetOptions): Promise<GetResult | NotModified | null>
  function get(key: string, opts?: GetOptions): Promise<GetResult | null>
  function get(key: string, opts?: GetOptions & { ifNoneMatch?: string }): Promise<GetResult | NotModified | null> {
    return read<GetResult | NotModified>(
      opts?.signal,
      opts?.prefer,
      (store) => store.get(key, opts as ConditionalGetOptions),
      (got, servedBy) => ('meta' in got ? { ...got, meta: { ...got.meta, servedBy } } : got),
    )
  }

  // Every store of the group is closed by whoever owns it (the registry closes each once).
  // Writes, listings, deletes, copies and multipart uploads go to the primary only: the
  // fallbacks are replicas it feeds (or that lag it), a listing merged over stores that differ
  // would page inconsistently, and an upload's parts must all reach the store that completes it.
  return { id, type, head, get, put: (key, body, opts) => primary.store.put(key, body, opts), ...adminOf(primary.store) }
}

function settleWithBody(body: Readable, member: FallbackMember, latencyMs: number): void {
  let settled = false
  body.once('end', () => {
    settled = true
    member.health.ok(latencyMs)
  })
  body.once('error', (error) => {
    settled = true
    member.health.failed(failsStore(error))
  })
  body.once('close', () => {
    if (!settled) member.health.failed(false)
  })
}

/** A mid-body error that speaks of the store: not an abort (a client that left), not a refusal. */
function failsStore(error: Error): boolean {
  if (error.name === 'AbortError') return false
  return error instanceof UpstreamError ? COUNTED.has(error.kind) : true
}

function mostTelling(errors: readonly UpstreamError[]): UpstreamError {
  let best = errors[errors.length - 1] as UpstreamError
  for (const error of errors) if (TELLING.indexOf(error.kind) < TELLING.indexOf(best.kind)) best = error
  return best
}
