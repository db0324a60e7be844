import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
import { UpstreamError, type UpstreamErrorKind } from '../errors.ts'
import type { ConditionalGetOptions, GetOptions, GetResult, NotModified, ObjectMeta, PutOptions, Store } from './types.ts'

/** The two calls of `Telemetry` this decorator makes. */
export interface UpstreamMetrics {
  upstreamOk(store: string, op: string, seconds: number): void
  upstreamError(store: string, op: string, kind: UpstreamErrorKind): void
}

/**
 * A store whose calls are counted and timed: `upstreamOk(store.id, op, seconds)` when a call
 * answers (an object, a miss or "not modified"), `upstreamError(store.id, op, kind)` when it
 * fails with an `UpstreamError`. `op` is `head`, `put`, or `get` (or `GetOptions.op`, e.g.
 * `get-page`). A call's time is until it answers, not until its body is read.
 *
 * @example
 * const store = withMetrics(withDeadline(createFsStore({ id: 'local', root }), { timeoutMs }), telemetry)
 */
export function withMetrics(store: Store, telemetry: UpstreamMetrics): Store {
  const { id } = store

  async function measured<T>(op: string, call: () => Promise<T>): Promise<T> {
    const started = performance.now()
    try {
      const value = await call()
      telemetry.upstreamOk(id, op, (performance.now() - started) / 1000)
      return value
    } catch (error) {
      if (error instanceof UpstreamError) telemetry.upstreamError(id, op, error.kind)
      throw error
    }
  }

  function get(key: string, opts: ConditionalGetOptions): Promise<GetResult | NotModified | null>
  function get(key: string, opts?: GetOptions): Promise<GetResult | null>
  function get(key: string, opts: GetOptions & { ifNoneMatch?: string } = {}): Promise<GetResult | NotModified | null> {
    return measured(opts.op ?? 'get', () => store.get(key, opts as ConditionalGetOptions))
  }

  const close = store.close?.bind(store)
  return {
    type: store.type,
    id,
    head: (key: string, opts?: { signal?: AbortSignal }): Promise<ObjectMeta | null> => measured('head', () => store.head(key, opts)),
    get,
    put: (key: string, body: Readable, opts: PutOptions): Promise<ObjectMeta> => measured('put', () => store.put(key, body, opts)),
    ...(close && { close }),
  }
}
