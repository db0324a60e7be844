/**
 * The front-end seam: what differs between dialects of the object API (ours today; S3's
 * XML API later) — how a request names its target, how it authenticates, how an error is
 * written. The get/head/put handlers, the cache and the stores are shared.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AuthRequest, Principal } from '../../auth/middleware.ts'
import { AuthError, BadRequestError } from '../../errors.ts'
import { peerAddress } from '../client-address.ts'
import { prefersHtml } from '../accept.ts'
import { sendErrorPage } from '../error-page.ts'
import type { HttpError } from '../errors.ts'
import { sendJson } from './respond.ts'
import { type ObjectTarget, ParsedPaths, parseObjectPath } from './target.ts'

/** The methods the object handlers implement. */
export type ObjectMethod = 'GET' | 'HEAD' | 'PUT'

/**
 * One dialect of the object API. Every method is synchronous (the memory-hit path has no
 * await) and throws domain errors (`src/errors.ts`), which the handler maps with
 * `toHttpError` and hands to `writeError`.
 */
export interface FrontEnd {
  /** Bucket and key the request names. `path` is the raw (still encoded) path, `isObjectPath` holds. */
  target(incoming: IncomingMessage, path: string): ObjectTarget
  /**
   * Who is asking: a Principal, or throws (`AuthError` → 401, `AuthRateLimitedError` → 429,
   * `BadRequestError` → 400). `params` is the parsed query, undefined when there was none.
   */
  authenticate(incoming: IncomingMessage, method: ObjectMethod, target: ObjectTarget, params: URLSearchParams | undefined): Principal
  /** Called once the request is authenticated and names a configured bucket (the place to cache a parse). */
  admit?(path: string, target: ObjectTarget): void
  /** Writes an error answer; headers are not sent yet. `error.headers` must go out with it. */
  writeError(outgoing: ServerResponse, error: HttpError): void
}

/**
 * The value of a header that must appear at most once, or undefined. Node keeps the first
 * of a repeated `Authorization`; a proxy in front may act on the last: refuse both (400).
 * Reads `rawHeaders` (already there) rather than `headersDistinct`, which builds an object
 * of every header on each request.
 */
export function soleHeader(incoming: IncomingMessage, name: 'authorization'): string | undefined {
  const value = incoming.headers[name]
  if (value === undefined) return undefined
  const raw = incoming.rawHeaders
  let seen = 0
  for (let i = 0; i < raw.length; i += 2) {
    const field = raw[i]!
    if (field.length === name.length && isAsciiCaseInsensitive(field, name) && ++seen > 1) throw new BadRequestError(`more than one ${name} header`)
  }
  return value
}

/** `field` equals the lower-case `lower`, ASCII case aside (RFC 9110 §5.1), without a lower-cased copy. */
function isAsciiCaseInsensitive(field: string, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    const c = field.charCodeAt(i)
    if ((c >= 65 && c <= 90 ? c + 32 : c) !== lower.charCodeAt(i)) return false
  }
  return true
}

/**
 * Cachegate's dialect (today's behaviour): `/:bucket_id/*path`, a presigned `?sig=` or
 * `Authorization: Bearer`, JSON errors, or a short HTML page when `Accept` prefers it (a
 * link opened in a tab).
 *
 * @example
 * const frontEnd = createDefaultFrontEnd({ authenticate: createAuthenticator({ publicKey, bearerToken }) })
 * const handle = createObjectHandler({ frontEnd, stores, objects, telemetry, logger })
 */
export function createDefaultFrontEnd(options: { authenticate: (request: AuthRequest) => Principal; clientAddress?: (incoming: IncomingMessage) => string }): FrontEnd {
  const { authenticate } = options
  const clientAddress = options.clientAddress ?? peerAddress
  const paths = new ParsedPaths()
  return {
    target(_incoming, path) {
      return paths.get(path) ?? parseObjectPath(path)
    },
    authenticate(incoming, method, target, params) {
      const authorization = soleHeader(incoming, 'authorization')
      const sigs = params?.getAll('sig')
      if (sigs !== undefined && sigs.length > 1) throw new AuthError('malformed signature', 'more than one sig parameter')
      return authenticate({ method, bucket: target.bucket, key: target.key, sig: sigs?.[0], authorization, client: () => clientAddress(incoming) })
    },
    admit(path, target) {
      paths.remember(path, target)
    },
    writeError(outgoing, error) {
      if (prefersHtml(outgoing.req.headers.accept)) return sendErrorPage(outgoing, error)
      sendJson(outgoing, error.status, { error: error.error, message: error.message }, error.headers)
    },
  }
}
