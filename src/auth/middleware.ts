import { LRUCache } from 'lru-cache'
import { AuthError, AuthRateLimitedError, ForbiddenError } from '../errors.ts'
import { createBearerMatcher } from './bearer.ts'
import { type FailureLimiter, clientKey } from './failure-limiter.ts'
import { createVerifier, decodeBase64Url } from './keys.ts'
import { checkScope } from './payload-v2.ts'
import { type KeyRing, type SignatureCheck, type VerifiedLink, checkPayload, verifyLink } from './presign.ts'
import { type TokenEntry, createTokenMatcher, tokenRefusal } from './tokens.ts'

/** Distinct `sig` values whose signature verified, kept so a reused link skips Ed25519. */
const VERIFIED_SIGS = 10_000

export interface AuthOptions {
  publicKey?: string
  previousPublicKeys?: string[]
  /** Keys with an id (`auth.keys`): a link naming one (`kid`) is verified by it alone. */
  keys?: readonly { id: string; public_key: string }[]
  bearerToken?: string
  /** Scoped tokens (`auth.tokens`), held as SHA-256 digests. */
  tokens?: readonly TokenEntry[]
  /** Links whose expiry is further than this many seconds away are refused (`auth.max_link_lifetime`). */
  maxLinkLifetime?: number
  /** Failed authentications per client address; an empty bucket stops signature verification. */
  limiter?: FailureLimiter
  /** Called once when a client's failures empty its bucket (for a log line). */
  onLimited?: (client: string) => void
  /** Current time in ms (injectable for tests). */
  now?: () => number
}

export interface AuthRequest {
  method: string
  bucket: string
  key: string
  /** The `sig` query parameter, if present. */
  sig?: string
  /** The Authorization header, if present. */
  authorization?: string
  /**
   * The client's address (the peer, or the forwarded one behind `trust_proxy`), for the
   * failed-auth limiter: a function, called only when an address is needed.
   */
  client?: () => string
}

/** Who is asking, with what the handlers need to know of their credential. */
export type Principal =
  | {
      kind: 'presigned'
      /** Unix seconds. */
      expiresAt: number
      /** A v2 link's `ms`: the largest PUT body it allows (413 above). */
      maxSize?: number
      /** A v2 link's `ct`: the Content-Type a PUT must declare (415 otherwise). */
      contentType?: string
      /** A v2 link's `Content-Disposition` for GET and HEAD (`fn`/`disp`). */
      disposition?: string
    }
  | {
      kind: 'bearer'
      /** The `auth.tokens` entry that matched; undefined for the plain `bearer_token`. */
      tokenId?: string
    }

/** The plain bearer_token's principal: one object, not one per request. */
const PLAIN_BEARER: Principal = Object.freeze({ kind: 'bearer' })

/**
 * Builds the authenticator for object routes: a presigned `sig` or a bearer token.
 * Options are validated once, here; per request only the checks run.
 *
 * @example
 * const authenticate = createAuthenticator({ publicKey, bearerToken })
 * const who = authenticate({ method: 'GET', bucket: 'media', key: 'a.jpg', sig })
 */
export function createAuthenticator(options: AuthOptions): (request: AuthRequest) => Principal {
  const keys = keyRing(options)
  // Only successes are cached, keyed by the whole `sig` (payload and signature bytes): a
  // failure is never remembered as a success, and expiry, method, bucket and path (and a v2
  // link's scope) are still checked on every request.
  const verified = new LRUCache<string, VerifiedLink>({ max: VERIFIED_SIGS })
  const matchesBearer = options.bearerToken ? createBearerMatcher(options.bearerToken) : undefined
  const findToken = options.tokens?.length ? createTokenMatcher(options.tokens) : undefined
  const tokenPrincipals = new Map((options.tokens ?? []).map((t) => [t.id, Object.freeze({ kind: 'bearer', tokenId: t.id }) as Principal]))
  const maxLifetimeMs = options.maxLinkLifetime === undefined ? Infinity : options.maxLinkLifetime * 1000
  const now = options.now ?? Date.now

  const { limiter, onLimited } = options

  function check(request: AuthRequest): Principal {
    if (request.sig !== undefined) {
      if (keys.all.length === 0) throw new AuthError('presigned links not enabled', 'no public_key or keys configured')
      let link = verified.get(request.sig)
      if (!link) {
        // A client whose failures emptied its bucket gets no more verifications. Bearer
        // tokens and links already verified cost microseconds and are still checked, so a
        // service sharing the flooding address (NAT, proxy) keeps working.
        const wait = limiter?.retryAfter(clientKey(request.client?.())) ?? 0
        if (wait > 0) throw new AuthRateLimitedError(wait)
        link = verifyLink(request.sig, keys)
        verified.set(request.sig, link)
      }
      const nowMs = now()
      if (link.v === 1) {
        checkPayload(link, { method: request.method, bucket: request.bucket, path: request.key }, nowMs)
        if (link.exp * 1000 - nowMs > maxLifetimeMs) throw tooLong(maxLifetimeMs)
        return { kind: 'presigned', expiresAt: link.exp }
      }
      const { payload } = link
      // The credential itself first (401), then what it is for (403).
      if (payload.exp * 1000 - nowMs > maxLifetimeMs) throw tooLong(maxLifetimeMs)
      checkScope(link, { method: request.method, bucket: request.bucket, path: request.key, client: request.client }, nowMs)
      return { kind: 'presigned', expiresAt: payload.exp, maxSize: payload.ms, contentType: payload.ct, disposition: link.disposition }
    }
    if (request.authorization !== undefined) {
      const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(request.authorization)
      if (!match) throw new AuthError('malformed authorization', 'expected "Authorization: Bearer <token>"')
      if (!matchesBearer && !findToken) throw new AuthError('bearer tokens not enabled', 'no bearer_token or tokens configured')
      // The plain token first: no hash on its path (the 4 KiB hit path of a bearer client).
      if (matchesBearer?.(match[1]!)) return PLAIN_BEARER
      const entry = findToken?.(match[1]!)
      if (!entry) throw new AuthError('bad token')
      const refused = tokenRefusal(entry, request.method, request.bucket, request.key)
      if (refused) throw new ForbiddenError('token scope', refused, entry.id)
      return tokenPrincipals.get(entry.id)!
    }
    throw new AuthError('missing credentials', 'no sig parameter and no Authorization header')
  }

  if (!limiter) return check
  return function authenticate(request: AuthRequest): Principal {
    try {
      return check(request)
    } catch (error) {
      if (error instanceof AuthError) {
        const client = clientKey(request.client?.())
        if (limiter.fail(client)) onLimited?.(client)
      }
      throw error
    }
  }
}

function tooLong(maxLifetimeMs: number): AuthError {
  const max = maxLifetimeMs / 1000
  return new AuthError('lifetime too long', `expiry is more than ${max} s away`, `link lifetime exceeds the gateway's limit of ${max} s`)
}

/** public_key, previous_public_keys, then auth.keys, each key once; the ones with an id by id. */
function keyRing(options: AuthOptions): KeyRing {
  const verifiers = new Map<string, SignatureCheck>()
  const verifierOf = (key: string): SignatureCheck => {
    let check = verifiers.get(key)
    if (!check) {
      const bytes = decodeBase64Url(key)
      if (bytes?.length !== 32) throw new TypeError('public keys must be 32 bytes of base64url')
      verifiers.set(key, (check = createVerifier(bytes)))
    }
    return check
  }
  for (const key of [options.publicKey, ...(options.previousPublicKeys ?? [])]) if (key) verifierOf(key)
  const byId = new Map<string, SignatureCheck>()
  for (const { id, public_key } of options.keys ?? []) {
    if (byId.has(id)) throw new TypeError(`key id "${id}" is used twice`)
    byId.set(id, verifierOf(public_key))
  }
  return { all: [...verifiers.values()], byId }
}
