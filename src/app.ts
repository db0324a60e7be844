import type { IncomingMessage, ServerResponse } from 'node:http'
import { Hono } from 'hono'
import { getRequestListener } from '@hono/node-server'
import { FailureLimiter } from './auth/failure-limiter.ts'
import { type AuthRequest, type Principal, createAuthenticator } from './auth/middleware.ts'
import type { Cache } from './cache/types.ts'
import type { Config } from './config/schema.ts'
import type { Logger } from './log.ts'
import { Telemetry } from './metrics.ts'
import { type FreshnessPolicy, createObjectService, policyOf } from './objects/index.ts'
import { ADMIN_PREFIX, createAdminAuth, createAdminHandler } from './http/admin/index.ts'
import type { Store } from './stores/types.ts'
import { OBJECT_ROUTE, type ObjectHooks, createDefaultFrontEnd, createObjectHandler, isObjectPath, splitTarget } from './http/object/index.ts'
import { withCors } from './http/cors/hooks.ts'
import { announcesBody } from './http/unread-body.ts'
import { UploadRateGuard } from './http/upload-rate.ts'
import { createClientAddress } from './http/client-address.ts'
import { createS3Handler, isSigV4Request } from './s3/handler.ts'
import { Readiness } from './readiness.ts'
import type { ReportError } from './sentry.ts'
import { AccessLog, LineWriter } from './http/access-log.ts'

export interface AppDeps {
  config: Config
  stores: ReadonlyMap<string, Store>
  cache: Cache
  logger: Logger
  telemetry?: Telemetry
  /** Current time in ms (injectable for tests). */
  now?: () => number
  /** Called with errors that reached no handler (Sentry hooks in here). */
  reportError?: ReportError
  /** Synchronous hooks on the object routes (the configured CORS hooks run after them). */
  objectHooks?: ObjectHooks
  /** Where access lines go (default: stdout); tests read them. */
  accessLogWrite?: (chunk: string) => void
  /** Shutdown state (server.ts): `/health/ready` answers 503 and responses close their connection while draining. */
  readiness?: Readiness
}

const INFO_METHODS = 'GET, HEAD'

/** Counts each accepted credential by kind and token id (ids come from the config: bounded labels). */
function countAuth(authenticate: (request: AuthRequest) => Principal, telemetry: Telemetry): (request: AuthRequest) => Principal {
  return function countedAuthenticate(request) {
    const principal = authenticate(request)
    telemetry.authAccepted(principal.kind, principal.kind === 'bearer' ? principal.tokenId : undefined)
    return principal
  }
}

/**
 * The access line of a request its handler answered synchronously (a memory hit) is written
 * at once, with no listener; any other waits for its response to close.
 */
function logAccess(log: AccessLog, pending: Promise<void> | undefined, incoming: IncomingMessage, outgoing: ServerResponse, path: string, object: boolean, started: number): void {
  if (pending === undefined && outgoing.writableEnded) log.ended(incoming, outgoing, path, object, started)
  else log.whenClosed(incoming, outgoing, path, object, started)
}

/** The readiness probe; a store named `health` cannot serve a key `ready`. */
const READY_PATH = '/health/ready'

/**
 * Wires routes to their dependencies and returns the node:http request handler. Never
 * listens: `server.ts` does. Object routes (`/:bucket_id/*path`) are handled directly on
 * node:http, the hot path; the operator endpoints go through Hono. With `metrics.listen`,
 * `metricsHandle` serves `/health`, `/stats` and `/metrics` for the second listener.
 *
 * @example
 * const { handle } = createApp({ config, stores, cache: createMemoryCache({ maxBytes }), logger })
 * http.createServer(handle).listen(8080)
 */
export function createApp(deps: AppDeps) {
  const { config, stores, cache, logger } = deps
  const telemetry = deps.telemetry ?? new Telemetry()
  const readiness = deps.readiness ?? new Readiness()
  const objects = createObjectService({
    cache,
    maxObjectSize: config.cache.max_object_size,
    maxUploadSize: config.cache.max_upload_size,
    pageSize: config.cache.page_size,
    telemetry,
    logger,
    now: deps.now,
    freshness: freshnessOf(config),
    verifySampleRate: config.cache.verify_sample_rate,
    verifyOnly: config.cache.verify_only,
  })
  const adminAuth = createAdminAuth({ adminTokenSha256: config.auth.admin_token_sha256, tokens: config.auth.tokens })
  const adminHandler = adminAuth && createAdminHandler({ auth: adminAuth, objects, buckets: new Set(stores.keys()), logger, reportError: deps.reportError })
  telemetry.attach({ tiers: () => cache.stats(), inflightFills: objects.inflightFills })
  const { limits } = config
  const clientAddress = createClientAddress(config.trust_proxy)
  // Access lines are info records: a log level above info turns them off too (tests run silent).
  const accessLog =
    config.log.access && (logger.level === 'info' || logger.level === 'debug') ? new AccessLog({ writer: new LineWriter(deps.accessLogWrite), clientAddress }) : undefined
  const authenticate = createAuthenticator({
    publicKey: config.auth.public_key,
    previousPublicKeys: config.auth.previous_public_keys.filter((k): k is string => Boolean(k)),
    bearerToken: config.auth.bearer_token,
    keys: config.auth.keys,
    tokens: config.auth.tokens,
    maxLinkLifetime: config.auth.max_link_lifetime,
    limiter: limits.failed_auth_per_second > 0 && limits.failed_auth_burst > 0 ? new FailureLimiter({ perSecond: limits.failed_auth_per_second, burst: limits.failed_auth_burst }) : undefined,
    onLimited: (client) => logger.warn('failed-auth limit reached; answering 429 until it refills', { client }),
    now: deps.now,
  })
  const uploadRate =
    limits.min_upload_bytes_per_second > 0
      ? new UploadRateGuard({ minBytesPerSecond: limits.min_upload_bytes_per_second, windowMs: limits.upload_rate_window_seconds * 1000, logger, onCut: () => telemetry.connectionCut('slow_upload') })
      : undefined
  const watchUpload = uploadRate && ((incoming: IncomingMessage) => uploadRate.watch(incoming))
  // CORS from config after the hooks passed in, for both dialects (a preflight carries no
  // SigV4 signature, so the object routes answer it; S3 responses get the headers too).
  const hooks = withCors(config, deps.objectHooks)
  const objectHandler = createObjectHandler({
    stores,
    objects,
    frontEnd: createDefaultFrontEnd({ authenticate: countAuth(authenticate, telemetry), clientAddress }),
    hooks,
    watchUpload,
    telemetry,
    logger,
    now: deps.now,
    reportError: deps.reportError,
    onAuthenticated: accessLog && ((incoming, principal) => accessLog.authenticated(incoming, principal)),
  })

  // The S3 front end (issue 15), only with s3_api: without it nothing here looks for SigV4.
  const s3Api = config.s3_api
  const s3Handler =
    s3Api &&
    createS3Handler({
      stores,
      objects,
      credentials: s3Api.credentials.map((c) => ({ accessKeyId: c.access_key_id, secretAccessKey: c.secret_access_key, buckets: c.buckets, methods: new Set(c.methods), prefix: c.prefix })),
      region: s3Api.region,
      maxLinkLifetime: config.auth.max_link_lifetime,
      maxUploadSize: config.cache.max_upload_size,
      telemetry,
      logger,
      now: deps.now,
      watchUpload,
      reportError: deps.reportError,
      hooks,
      onAuthenticated: accessLog && ((incoming, principal) => accessLog.authenticated(incoming, principal)),
    })

  /** The operator endpoints; `/stats` and `/metrics` only where `withTelemetry`. */
  function operatorApp(withTelemetry: boolean): Hono {
    const app = new Hono()
    const paths = withTelemetry ? ['/health', READY_PATH, '/stats', '/metrics'] : ['/health', READY_PATH]
    app.get('/health', (c) => c.json({ status: 'ok' }))
    // For balancers: 503 from the moment a SIGTERM arrives, while requests are still served.
    app.get(READY_PATH, (c) => (readiness.draining ? c.json({ status: 'draining' }, 503) : c.json({ status: 'ready' })))
    if (withTelemetry) {
      app.get('/stats', (c) => c.json(telemetry.snapshot()))
      app.get('/metrics', async (c) => c.body(await telemetry.registry.metrics(), 200, { 'Content-Type': telemetry.registry.contentType }))
    }
    for (const path of paths) {
      app.all(path, (c) => c.json({ error: 'method not allowed' }, 405, { Allow: INFO_METHODS }))
    }
    app.notFound((c) => c.json({ error: 'not found' }, 404))
    app.onError((error, c) => {
      logger.error('unhandled error', { method: c.req.method, err: error })
      deps.reportError?.(error, { method: c.req.method, route: c.req.routePath })
      return c.json({ error: 'internal error' }, 500)
    })
    return app
  }
  // With metrics.listen, /stats and /metrics (store ids, auth failures, Node's version) are
  // served only there: the public listener answers 404 for them.
  const separateMetrics = config.metrics.listen !== undefined
  const app = operatorApp(!separateMetrics)
  const honoListener = getRequestListener(app.fetch)
  /** The metrics listener's handler (only with metrics.listen): operator endpoints, no objects, not counted as traffic. */
  const metricsHandle = separateMetrics ? getRequestListener(operatorApp(true).fetch) : undefined

  /** An error no handler answered (a bug): logged, reported, the connection cut. */
  function unhandled(outgoing: ServerResponse, error: unknown): void {
    logger.error('unhandled error', { err: error })
    deps.reportError?.(error, { method: outgoing.req.method ?? 'GET', route: OBJECT_ROUTE })
    outgoing.destroy()
  }

  function handle(incoming: IncomingMessage, outgoing: ServerResponse): void {
    const { path, query } = splitTarget(incoming.url ?? '/')
    // `/health/ready` has the shape of an object path (bucket "health"): the probe wins.
    const object = isObjectPath(path) && path !== READY_PATH && !path.startsWith(ADMIN_PREFIX)
    const started = accessLog === undefined ? 0 : performance.now()
    if (adminHandler && path.startsWith(ADMIN_PREFIX)) {
      accessLog?.whenClosed(incoming, outgoing, path, false, started)
      outgoing.once('finish', () => telemetry.request(incoming.method ?? 'GET', outgoing.statusCode))
      adminHandler(incoming, outgoing, path).catch((error: unknown) => unhandled(outgoing, error))
      return
    }
    // SigV4-signed (one header prefix or one query key): S3's dialect, bucket-level paths included.
    if (s3Handler && isSigV4Request(incoming, query)) {
      if (readiness.draining) outgoing.setHeader('Connection', 'close')
      const pending = s3Handler(incoming, outgoing, path, query)
      pending?.catch((error: unknown) => unhandled(outgoing, error))
      if (accessLog) logAccess(accessLog, pending, incoming, outgoing, path, object, started)
      return
    }
    // Only an object PUT reads a body; any other body would be read and discarded by Node to
    // keep the connection alive, however long it is (see http/unread-body.ts).
    if (!(object && incoming.method === 'PUT') && announcesBody(incoming)) outgoing.setHeader('Connection', 'close')
    // Draining: a keep-alive client is told to reconnect (to another node) after this answer.
    else if (readiness.draining) outgoing.setHeader('Connection', 'close')
    if (object) {
      // No closure per request: a memory hit returns no promise, and only a promise needs one.
      let pending: Promise<void> | undefined
      try {
        pending = objectHandler(incoming, outgoing, path, query)
        pending?.catch((error: unknown) => unhandled(outgoing, error))
      } catch (error) {
        unhandled(outgoing, error)
      }
      if (accessLog) logAccess(accessLog, pending, incoming, outgoing, path, object, started)
      return
    }
    accessLog?.whenClosed(incoming, outgoing, path, object, started)
    outgoing.once('finish', () => telemetry.request(incoming.method ?? 'GET', outgoing.statusCode))
    void honoListener(incoming, outgoing)
  }

  return { app, handle, metricsHandle, telemetry, objects, clientAddress, accessLog }
}

/** Each store's freshness: the global `cache` keys, overridden one by one by `stores.<id>.cache`. */
function freshnessOf(config: Config): Map<string, FreshnessPolicy> {
  return new Map(Object.entries(config.stores).map(([id, store]) => [id, policyOf(config.cache, store.cache)]))
}
