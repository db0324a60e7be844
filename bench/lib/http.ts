/** Small HTTP clients for the harness: one timed GET, a burst of concurrent GETs, a probe. */
import http from 'node:http'
import { performance } from 'node:perf_hooks'

export interface TimedGet {
  status: number
  bytes: number
  /** Request sent → first body byte, in ms. */
  ttfbMs: number
  /** Request sent → last body byte, in ms. */
  totalMs: number
  headers: http.IncomingHttpHeaders
}

/**
 * GET `url` on a fresh connection and discard the body, timing the first and last body
 * byte. Each call opens its own connection, the same for the gateway and for s3rver.
 * `bytesPerSecond` makes a slow client: it pauses the response whenever it is ahead.
 */
export function timedGet(url: string, headers: Record<string, string> = {}, options: { bytesPerSecond?: number } = {}): Promise<TimedGet> {
  const { bytesPerSecond } = options
  return new Promise((resolve, reject) => {
    const started = performance.now()
    let ttfbMs = -1
    let bytes = 0
    const req = http.get(url, { headers, agent: false }, (res) => {
      res.on('data', (chunk: Buffer) => {
        const now = performance.now()
        if (ttfbMs < 0) ttfbMs = now - started
        bytes += chunk.length
        if (bytesPerSecond) {
          const ahead = started + ttfbMs + (bytes / bytesPerSecond) * 1000 - now
          if (ahead > 1) {
            res.pause()
            setTimeout(() => res.resume(), ahead)
          }
        }
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, ttfbMs, totalMs: performance.now() - started, headers: res.headers }))
      res.on('error', reject)
    })
    req.on('error', reject)
  })
}

/** `count` GETs of one URL started at once (one connection each); resolves with every result. */
export async function burst(url: string, count: number, headers: Record<string, string> = {}): Promise<TimedGet[]> {
  return Promise.all(Array.from({ length: count }, () => timedGet(url, headers)))
}

/** Status and headers of one GET (body discarded). */
export async function probe(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; bytes: number }> {
  const got = await timedGet(url, headers)
  return { status: got.status, headers: got.headers, bytes: got.bytes }
}
