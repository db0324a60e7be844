/**
 * Sentry, when `sentry.dsn` is set: unexpected errors (500s: bugs, not domain errors) are
 * reported with the request's method and route, and every event, transaction and breadcrumb
 * is scrubbed before it leaves: the SDK records request URLs and headers by itself, and
 * those carry presigned `sig`s, bearer tokens, cookies and the stores' `X-Amz-*` signatures.
 */
import type { Config } from './config/schema.ts'
import type { Logger } from './log.ts'

/** Where an unexpected error happened: never the path or the query (keys and signatures). */
export interface ErrorContext {
  method: string
  /** The route pattern, e.g. `/:bucket_id/*path`. */
  route: string
}

export type ReportError = (error: unknown, context?: ErrorContext) => void

/** Headers whose values are credentials (request and response, any case). */
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|set-cookie|x-amz-.*|x-ms-.*|x-api-key|x-auth-token)$/i
/** Keys that hold a query string or cookies, wherever they appear (request, span data, breadcrumbs). */
const DROPPED_KEYS = new Set(['query_string', 'cookies', 'http.query', 'url.query', 'data'])
/** A URL or path with a query: the query goes (it may hold a `sig` or an `X-Amz-Signature`). */
const QUERY = /(https?:\/\/[^\s?#"'<>]*|\/[^\s?#"'<>]*)\?[^\s#"'<>]*/gi
const BEARER = /\b(Bearer|Basic)\s+[\x21-\x7e]+/gi
/** Signature-looking parameters outside a URL (`sig=...`, `X-Amz-Credential=...`). */
const PARAM = /\b(sig|signature|token|X-Amz-[A-Za-z-]+)=[^\s&"'<>]*/gi

export function scrubString(value: string): string {
  return value.replace(QUERY, '$1').replace(BEARER, '$1 [Filtered]').replace(PARAM, '$1=[Filtered]')
}

/** Scrubs in place, depth-bounded: events are plain JSON-like objects. */
function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubString(value)
  if (depth > 12 || value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = scrub(value[i], depth + 1)
    return value
  }
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (DROPPED_KEYS.has(key) && depth > 0) delete record[key]
    else if (SECRET_HEADER.test(key)) record[key] = '[Filtered]'
    else record[key] = scrub(record[key], depth + 1)
  }
  return value
}

/**
 * Removes queries, credentials and secret headers from a Sentry event (or breadcrumb).
 * `data` is dropped anywhere below the top (a request body, a breadcrumb's URL details);
 * stack frames and messages keep everything else, minus query strings and tokens.
 */
export function scrubEvent<T>(event: T): T {
  return scrub(event, 0) as T
}

/** Initialises Sentry only when a DSN is configured (the SDK is heavy to load). */
export async function initSentry(config: Config, logger: Logger): Promise<{ report: ReportError; flush: (timeoutMs: number) => Promise<unknown> } | undefined> {
  const { dsn, environment, release, traces_sample_rate, debug } = config.sentry
  if (!dsn) return undefined
  const Sentry = await import('@sentry/node')
  Sentry.init({
    dsn,
    environment,
    release,
    tracesSampleRate: traces_sample_rate,
    debug,
    // Collect none of what carries credentials; the scrubbers below are the second line.
    dataCollection: { userInfo: false, cookies: false, httpHeaders: false, httpBodies: [], urlQueryParams: false },
    beforeSend: (event) => scrubEvent(event),
    beforeSendTransaction: (event) => scrubEvent(event),
    beforeBreadcrumb: (breadcrumb) => scrubEvent(breadcrumb),
  })
  logger.info('sentry enabled', { environment: environment ?? null })
  return {
    report(error, context) {
      Sentry.withScope((scope) => {
        if (context) {
          scope.setTags({ method: context.method, route: context.route })
          scope.setTransactionName(`${context.method} ${context.route}`)
        }
        Sentry.captureException(error)
      })
    },
    flush: (timeoutMs) => Sentry.flush(timeoutMs),
  }
}
