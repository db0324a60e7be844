/**
 * A transparent HTTP proxy that counts what passes through it: point a store's endpoint at
 * `url` and assert how many upstream requests (per method) and body bytes a scenario cost.
 * `configure()` injects faults: latency, a slow link, or a failing upstream.
 */
import { once } from 'node:events'
import { Agent, createServer, request } from 'node:http'
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Transform } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'

export interface ProxyCounts {
  requests: number
  byMethod: Record<string, number>
  /** Response body bytes sent back to the client (headers excluded). */
  responseBytes: number
  /** Responses the client (the gateway) closed before they were complete (or while delayed). */
  closedEarly: number
}

/** Faults applied to every request from now on; `configure({})` turns them all off. */
export interface ProxyFaults {
  /** Wait this long before forwarding each request (or before failing it). */
  delayMs?: number
  /**
   * Per request: its delay in ms (undefined: `delayMs`). `index` counts the requests of this
   * method since `reset()` from 0, e.g. `({ method, index }) => (method === 'GET' && index % 50 === 49 ? 500 : 0)`.
   */
  delayFor?: (request: { method: string; path: string; index: number }) => number | undefined
  /** Cap the response body rate (per response), e.g. to keep a download in flight. */
  bytesPerSecond?: number
  /** Answer with this status and an S3/Azure-style XML error instead of forwarding. */
  failStatus?: number
  /**
   * Forward the request (the upstream acts on it), then answer this status (and the injected
   * error body) instead of the upstream's answer: a write that happened but looks failed, as
   * after a timeout. Undefined for a request: forwarded as usual.
   */
  failAfterForward?: (request: { method: string; path: string }) => number | undefined
  /** Forward the request at once, then hold the upstream's answer this long (ms): a write done, its answer late. */
  delayAnswerFor?: (request: { method: string; path: string }) => number | undefined
}

export interface CountingProxy {
  url: string
  counts: ProxyCounts
  reset(): void
  configure(faults: ProxyFaults): void
  close(): Promise<void>
}

/** Both SDKs parse `<Error><Code>` bodies into a typed service error. */
const INJECTED_ERROR_BODY = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected by the counting proxy</Message></Error>'
/** Throttled bodies are released in slices this big, so the rate is smooth. */
const THROTTLE_SLICE = 16 * 1024

/** A Transform that releases at most `bytesPerSecond` (averaged from the first byte). */
function throttle(bytesPerSecond: number): Transform {
  const started = Date.now()
  let released = 0
  return new Transform({
    async transform(chunk: Buffer, _encoding, callback) {
      try {
        for (let offset = 0; offset < chunk.length; offset += THROTTLE_SLICE) {
          const slice = chunk.subarray(offset, offset + THROTTLE_SLICE)
          const due = started + ((released + slice.length) / bytesPerSecond) * 1000
          if (due > Date.now()) await sleep(due - Date.now())
          released += slice.length
          this.push(slice)
        }
        callback()
      } catch (error) {
        callback(error as Error)
      }
    },
  })
}

/**
 * @example
 * const proxy = await startCountingProxy(s3.endpoint)
 * const store = createS3Store({ ..., endpoint: proxy.url, allowHttp: true })
 * await store.get('k'); assert.equal(proxy.counts.byMethod.GET, 1)
 */
export async function startCountingProxy(target: string): Promise<CountingProxy> {
  const upstream = new URL(target)
  const agent = new Agent({ keepAlive: true })
  const counts: ProxyCounts = { requests: 0, byMethod: {}, responseBytes: 0, closedEarly: 0 }

  let faults: ProxyFaults = {}

  const server = createServer(async (req, res) => {
    const method = req.method ?? 'GET'
    counts.requests += 1
    const index = counts.byMethod[method] ?? 0
    counts.byMethod[method] = index + 1
    // Snapshot: a configure() while this request waits must not change its fate half-way.
    const { bytesPerSecond, failStatus } = faults
    const failAfter = faults.failAfterForward?.({ method, path: req.url ?? '/' })
    const answerDelay = faults.delayAnswerFor?.({ method, path: req.url ?? '/' })
    const delayMs = faults.delayFor?.({ method, path: req.url ?? '/', index }) ?? faults.delayMs
    if (delayMs) {
      // Counted as soon as the client gives up, not when the delay ends.
      const closedWhileDelayed = () => counts.closedEarly++
      res.once('close', closedWhileDelayed)
      await sleep(delayMs)
      res.off('close', closedWhileDelayed)
    }
    // The client gave up while we waited: like a real upstream, never see the request.
    if (res.destroyed) return
    if (failStatus !== undefined) {
      req.resume()
      counts.responseBytes += Buffer.byteLength(INJECTED_ERROR_BODY)
      res.writeHead(failStatus, { 'content-type': 'application/xml', 'x-ms-error-code': 'ServiceUnavailable' }).end(INJECTED_ERROR_BODY)
      return
    }
    // Headers go through untouched, Host included: the client signed (SigV4, SharedKey) the
    // request for the proxy's host, and the server checks the signature against Host.
    let throttled: Transform | undefined
    const out = request(
      { host: upstream.hostname, port: upstream.port, method, path: req.url, headers: req.headers, agent },
      async (upRes: IncomingMessage) => {
        if (answerDelay) await sleep(answerDelay)
        if (failAfter !== undefined) {
          upRes.resume()
          upRes.once('end', () => res.writeHead(failAfter, { 'content-type': 'application/xml', 'x-ms-error-code': 'ServiceUnavailable' }).end(INJECTED_ERROR_BODY))
          return
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.rawHeaders)
        upRes.on('error', () => res.destroy())
        throttled = bytesPerSecond ? upRes.pipe(throttle(bytesPerSecond)) : undefined
        const body = throttled ?? upRes
        body.on('data', (chunk: Buffer) => (counts.responseBytes += chunk.length))
        body.pipe(res)
      },
    )
    out.on('error', () => {
      if (res.headersSent) res.destroy()
      else res.writeHead(502).end()
    })
    // A client that goes away mid-request must cut the upstream request too.
    res.on('close', () => {
      if (res.writableFinished) return
      counts.closedEarly++
      out.destroy()
      throttled?.destroy()
    })
    req.pipe(out)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    reset() {
      counts.requests = 0
      counts.byMethod = {}
      counts.responseBytes = 0
      counts.closedEarly = 0
    },
    configure(next: ProxyFaults) {
      faults = { ...next }
    },
    async close() {
      server.closeAllConnections()
      const closed = once(server, 'close')
      server.close()
      await closed
      agent.destroy()
    },
  }
}
