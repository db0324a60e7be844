import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { type RequestListener, type Server, createServer } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { Server as TlsServer } from 'node:tls'
import { type AppDeps, createApp } from './app.ts'
import { openDiskCache } from './cache/disk/index.ts'
import { createHybridCache } from './cache/hybrid.ts'
import { createMemoryCache } from './cache/memory.ts'
import type { Cache } from './cache/types.ts'
import type { Config } from './config/schema.ts'
import { type Logger, createLogger, levelFromEnv } from './log.ts'
import { Telemetry } from './metrics.ts'
import { Readiness } from './readiness.ts'
import { createStores, decorateStores, withFallbacks } from './stores/registry.ts'
import type { Store } from './stores/types.ts'
import { initSentry } from './sentry.ts'
import { trackThroughput } from './throughput.ts'
import { describeCertificate, tlsFromConfig } from './tls.ts'

export interface RunningServer {
  url: string
  server: Server
  /** The metrics listener's URL, when `metrics.listen` is set. */
  metricsUrl?: string
  /** Background revalidations and verify checks in flight have ended (tests). */
  settled(): Promise<void>
  /**
   * With `tls.cert`/`tls.key`: reads the pair again and serves it to new connections (SIGHUP);
   * open connections keep theirs. A pair that does not load is logged and the old one kept.
   */
  reloadTls?: () => boolean
  /** `/health/ready` and the draining state (tests and main.ts look at it). */
  readiness: Readiness
  /**
   * Stops the gateway. With `drain` (SIGTERM) it first answers not-ready for
   * `shutdown.drain_seconds`, still serving, so balancers move traffic away; then it stops
   * accepting and gives in-flight requests `shutdown.grace_seconds` before cutting them.
   */
  close(options?: { drain?: boolean }): Promise<void>
}

/** How long shutdown waits for Sentry to send what it holds. */
const SENTRY_FLUSH_MS = 2_000

/** While closing, how often connections that went idle (their last response done) are closed. */
const IDLE_SWEEP_MS = 100

/**
 * The memory tier, with the disk tier under it when `cache.max_disk` > 0. A disk tier that
 * cannot be opened (permissions, missing mount) is logged and skipped: the gateway still
 * serves, memory-only, rather than refusing to start.
 */
async function createCache(config: Config, logger: Logger, telemetry: Telemetry, now?: () => number): Promise<Cache> {
  const memory = createMemoryCache({ maxBytes: config.cache.max_memory, now })
  const { max_disk: maxDisk, disk_path: diskPath } = config.cache
  if (maxDisk <= 0) return memory
  try {
    const disk = await openDiskCache({ path: diskPath, maxBytes: maxDisk, logger, onError: (op) => telemetry.diskError(op), now })
    const recovered = disk.stats().disk
    logger.info('disk cache opened', { path: diskPath, max_disk: maxDisk, entries: recovered?.entries ?? 0, bytes: recovered?.bytes ?? 0 })
    return createHybridCache({ memory, disk, maxPromoteSize: config.cache.max_object_size, now })
  } catch (error) {
    telemetry.diskError('open')
    logger.warn('disk cache unavailable; running memory-only', { path: diskPath, err: error })
    return memory
  }
}

/** How often Node looks for connections over headersTimeout (its default: 30 s). */
const HEADERS_CHECK_INTERVAL_MS = 5_000

/** How often at most a refused connection is logged (a connection flood must not flood the log). */
const DROP_LOG_INTERVAL_MS = 10_000

/** `limits.max_connections`: Node closes connections over the limit as they are accepted. */
function limitConnections(server: Server, max: number, logger: Logger, telemetry: Telemetry): void {
  if (max <= 0) return
  server.maxConnections = max
  let lastLogged = -Infinity
  let refused = 0
  server.on('drop', () => {
    telemetry.connectionCut('max_connections')
    refused++
    const now = performance.now()
    if (now - lastLogged < DROP_LOG_INTERVAL_MS) return
    logger.warn('connection limit reached; refusing connections', { max_connections: max, refused_since_last_log: refused })
    lastLogged = now
    refused = 0
  })
}

/** Serves `/health`, `/stats` and `/metrics` on `metrics.listen`, apart from the public listener. */
async function listenMetrics(handle: RequestListener, address: { host: string; port: number }): Promise<{ server: Server; url: string }> {
  const server = createServer(handle)
  server.listen(address.port, address.host)
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const bound = server.address() as AddressInfo
  return { server, url: `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` }
}

/**
 * Builds stores, cache and app from a validated config and listens.
 *
 * @example
 * const running = await startServer(loadConfig('config.yaml'))
 * // ... later
 * await running.close()
 */
export async function startServer(
  config: Config,
  options: { logger?: Logger; stores?: Map<string, Store>; objectHooks?: AppDeps['objectHooks']; accessLogWrite?: AppDeps['accessLogWrite']; /** Clock for the cache's ages (tests). */ now?: () => number } = {},
): Promise<RunningServer> {
  const logger = options.logger ?? createLogger(levelFromEnv(config.log.level))
  const sentry = await initSentry(config, logger)
  const reportError = sentry?.report
  // First: an unreadable or mismatched certificate stops start-up before any store is built.
  const tls = await tlsFromConfig(config.tls)
  const telemetry = new Telemetry({ defaultMetrics: true })
  // Every store call gets the upstream deadline, hedging and is counted: composed once, here.
  const { timeout_seconds, hedge_quantile, hedge_min_samples, hedge_max_ratio } = config.upstream
  const hedge = { quantile: hedge_quantile, minSamples: hedge_min_samples, maxRatio: hedge_max_ratio }
  const decorated = decorateStores(options.stores ?? (await createStores(config)), { timeoutMs: timeout_seconds * 1000, telemetry, hedge })
  // Then buckets with a `fallback` list read through the ranked, breaker-guarded group.
  const { stores, health } = withFallbacks(decorated, config.stores)
  telemetry.attachStoreHealth(() => new Map([...health].map(([id, h]) => [id, h.snapshot()])))
  const cache = await createCache(config, logger, telemetry, options.now)
  const readiness = new Readiness()
  const { handle, metricsHandle, accessLog, objects } = createApp({
    config,
    stores,
    cache,
    logger,
    telemetry,
    reportError,
    objectHooks: options.objectHooks,
    readiness,
    accessLogWrite: options.accessLogWrite,
    now: options.now,
  })

  // Node enforces headersTimeout when it sweeps its connections: every 5 s, not every 30 s.
  // An https.Server is an http.Server in all that is used here (timeouts, close*Connections).
  const server: Server = tls
    ? (createHttpsServer({ ...tls.pair, connectionsCheckingInterval: HEADERS_CHECK_INTERVAL_MS }, handle) as unknown as Server)
    : createServer({ connectionsCheckingInterval: HEADERS_CHECK_INTERVAL_MS }, handle)
  if (config.tls.self_signed) logger.warn('tls.self_signed: serving a freshly generated self-signed certificate; for development only', describeCertificate(tls!.pair))
  server.listen(config.listen.port, config.listen.host)
  // No deadline on a whole request: a 5 GiB upload at 10 MiB/s takes over 8 minutes, more than
  // Node's 5-minute default. Each phase is bounded instead: headers (from the first byte of a
  // connection or request) by headersTimeout; auth is synchronous, and a refused request is
  // answered at once and its connection closed (http/unread-body.ts); a PUT body must keep
  // arriving at limits.min_upload_bytes_per_second (http/upload-rate.ts), which also cuts a
  // client that sends headers and then nothing; time the gateway itself spends before reading
  // (a store HEAD for If-Match) is bounded by the store timeouts. With the rate guard off,
  // only the idle timeout below bounds a body (a byte every 119 s keeps it alive).
  server.requestTimeout = 0
  server.headersTimeout = 30_000
  server.keepAliveTimeout = 65_000
  // A connection on which nothing moves for 2 minutes (a stuck client) is cut.
  server.setTimeout(120_000)
  limitConnections(server, config.limits.max_connections, logger, telemetry)
  const traffic = trackThroughput(server)
  telemetry.attachThroughput(() => traffic.meter.rates())
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `${tls ? 'https' : 'http'}://${host}:${address.port}`
  logger.info('listening', { url, stores: [...stores.keys()], max_memory: config.cache.max_memory })
  let metrics: { server: Server; url: string } | undefined
  if (metricsHandle && config.metrics.listen) {
    try {
      metrics = await listenMetrics(metricsHandle, config.metrics.listen)
    } catch (error) {
      server.close()
      throw error
    }
    logger.info('metrics listening', { url: metrics.url })
  }

  const { drain_seconds: drainSeconds, grace_seconds: graceSeconds } = config.shutdown
  let closing: Promise<void> | undefined
  const close = ({ drain = false }: { drain?: boolean } = {}) =>
    (closing ??= (async () => {
      readiness.drain()
      if (drain && drainSeconds > 0) {
        logger.info('draining: not ready, still serving', { drain_seconds: drainSeconds })
        await sleep(drainSeconds * 1000)
      }
      // Nothing on the metrics listener is worth waiting for: a cut scrape is retried.
      const metricsClosed = metrics && new Promise<void>((resolve) => metrics.server.close(() => resolve()))
      metrics?.server.closeAllConnections()
      const closed = new Promise<void>((resolve) => server.close(() => resolve()))
      logger.info('stopped accepting; finishing in-flight requests', { grace_seconds: graceSeconds })
      // server.close() closes the connections idle now; one whose response ends later would
      // wait out keepAliveTimeout, so idle ones are swept until the last is gone.
      const sweep = setInterval(() => server.closeIdleConnections(), IDLE_SWEEP_MS)
      const cut = setTimeout(() => {
        logger.warn('grace time over; cutting the remaining connections', { grace_seconds: graceSeconds })
        server.closeAllConnections()
      }, graceSeconds * 1000)
      sweep.unref()
      cut.unref()
      await closed
      clearInterval(sweep)
      clearTimeout(cut)
      traffic.stop()
      await metricsClosed
      await objects.settled()
      accessLog?.flush()
      await sentry?.flush(SENTRY_FLUSH_MS)
      await Promise.all([...decorated.values()].map((s) => s.close?.().catch(() => {})))
      await cache.close?.()
      logger.info('stopped')
    })())
  const reloadTls =
    tls?.reload &&
    (() => {
      try {
        const pair = tls.reload!()
        ;(server as unknown as TlsServer).setSecureContext(pair)
        logger.info('tls certificate reloaded; new connections use it', describeCertificate(pair))
        return true
      } catch (error) {
        logger.error('tls reload failed; still serving the previous certificate', { err: error })
        return false
      }
    })
  return { url, server, metricsUrl: metrics?.url, readiness, reloadTls, settled: () => objects.settled(), close }
}
