import { Hono } from 'hono'
import { createAuthenticator } from './auth/middleware.ts'
import type { Cache } from './cache/types.ts'
import type { Config } from './config/schema.ts'
import type { Logger } from './log.ts'
import { Telemetry } from './metrics.ts'
import { createObjectService } from './objects.ts'
import type { Store } from './stores/types.ts'
import { type Env, createObjectHandler, hasDotSegment, send, splitTarget } from './http/object-routes.ts'

export interface AppDeps {
  config: Config
  stores: ReadonlyMap<string, Store>
  cache: Cache
  logger: Logger
  telemetry?: Telemetry
  /** Current time in ms (injectable for tests). */
  now?: () => number
  /** Called with errors that reached no handler (Sentry hooks in here). */
  reportError?: (error: unknown) => void
}

const OBJECT_METHODS = 'GET, HEAD, PUT'
const INFO_METHODS = 'GET, HEAD'

/**
 * Wires routes to their dependencies. Never listens: `server.ts` does.
 *
 * @example
 * const app = createApp({ config, stores, cache: createMemoryCache({ maxBytes }), logger })
 * serve({ fetch: app.fetch, port: 8080 })
 */
export function createApp(deps: AppDeps) {
  const { config, stores, cache, logger } = deps
  const telemetry = deps.telemetry ?? new Telemetry()
  const objects = createObjectService({
    cache,
    maxObjectSize: config.cache.max_object_size,
    maxUploadSize: config.cache.max_upload_size,
    pageSize: config.cache.page_size,
    upstreamTimeoutMs: config.upstream.timeout_seconds * 1000,
    telemetry,
    logger,
  })
  telemetry.attach({ tiers: () => cache.stats(), inflightFills: objects.inflightFills })
  const authenticate = createAuthenticator({
    publicKey: config.auth.public_key,
    previousPublicKeys: config.auth.previous_public_keys.filter((k): k is string => Boolean(k)),
    bearerToken: config.auth.bearer_token,
    now: deps.now,
  })
  const objectHandler = createObjectHandler({ stores, objects, authenticate, telemetry, logger, now: deps.now })

  const app = new Hono<Env>()

  app.use(async function countRequests(c, next) {
    const outgoing = c.env.outgoing
    outgoing.once('finish', () => telemetry.request(c.req.method, outgoing.statusCode))
    // The URL parser already resolved dot segments away; refuse them as the client sent them.
    if (hasDotSegment(splitTarget(c.env.incoming.url ?? '/').path)) {
      return send(outgoing, 400, { error: 'invalid path', message: 'dot segment in path' }, {}, c.req.method === 'HEAD')
    }
    await next()
  })

  app.get('/health', (c) => c.json({ status: 'ok' }))
  app.get('/stats', (c) => c.json(telemetry.snapshot()))
  app.get('/metrics', async (c) => c.body(await telemetry.registry.metrics(), 200, { 'Content-Type': telemetry.registry.contentType }))
  for (const path of ['/health', '/stats', '/metrics']) {
    app.all(path, (c) => c.json({ error: 'method not allowed' }, 405, { Allow: INFO_METHODS }))
  }

  // Hono dispatches HEAD to GET routes (and drops any body): the handler reads the real method.
  app.on(['GET', 'PUT'], '/:bucket/*', objectHandler)
  app.all('/:bucket/*', (c) => c.json({ error: 'method not allowed', message: `use ${OBJECT_METHODS}` }, 405, { Allow: OBJECT_METHODS }))
  app.notFound((c) => c.json({ error: 'not found' }, 404))

  app.onError((error, c) => {
    logger.error('unhandled error', { method: c.req.method, err: error })
    deps.reportError?.(error)
    return c.json({ error: 'internal error' }, 500)
  })

  return { app, telemetry, objects }
}
