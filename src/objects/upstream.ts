import type { Readable } from 'node:stream'
import { performance } from 'node:perf_hooks'
import { UpstreamError } from '../errors.ts'
import type { Telemetry } from '../metrics.ts'
import type { Upstream } from './types.ts'

/**
 * Runs a store call with metrics and, except for uploads, a deadline on its answer: a store
 * that accepts the connection and never answers must not hold a key's singleflight forever.
 * A body that arrives after the deadline is destroyed.
 */
export function createUpstream(timeoutMs: number, telemetry: Telemetry): Upstream {
  return async function upstream(store, op, call) {
    const started = performance.now()
    let timer: NodeJS.Timeout | undefined
    try {
      const pending = call()
      const value =
        op === 'put'
          ? await pending
          : await Promise.race([
              pending,
              new Promise<never>((_, reject) => {
                timer = setTimeout(() => {
                  pending.then((late) => (late as { body?: Readable } | null)?.body?.destroy(), () => {})
                  reject(new UpstreamError(store.id, 'timeout', `store ${op} did not answer within ${timeoutMs} ms`))
                }, timeoutMs)
              }),
            ])
      telemetry.upstreamOk(store.id, op, (performance.now() - started) / 1000)
      return value
    } catch (error) {
      if (error instanceof UpstreamError) telemetry.upstreamError(store.id, op, error.kind)
      throw error
    } finally {
      clearTimeout(timer)
    }
  }
}
