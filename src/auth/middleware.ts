import { LRUCache } from 'lru-cache'
import { AuthError, AuthRateLimitedError } from '../errors.ts'
import { createBearerMatcher } from './bearer.ts'
import { type FailureLimiter, clientKey } from './failure-limiter.ts'
import { createVerifier, decodeBase64Url } from './keys.ts'
import { type PresignPayload, checkPayload, verifySignature } from './presign.ts'

/** Distinct `sig` values whose signature verified, kept so a reused link skips Ed25519. */
const VERIFIED_SIGS = 10_000

export interface AuthOptions {
  publicKey?: string
  previousPublicKeys?: string[]
  bearerToken?: string
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

export type Principal = { kind: 'presigned'; expiresAt: number } | { kind: 'bearer' }

/**
 * Builds the authenticator for object routes: a presigned `sig` or a bearer token.
 * Options are validated once, here; per request only the checks run.
 *
 * @example
 * const authenticate = createAuthenticator({ publicKey, bearerToken })
 * const who = authenticate({ method: 'GET', bucket: 'media', key: 'a.jpg', sig })
 */
export function createAuthenticator(options: AuthOptions): (request: AuthRequest) => Principal {
  const keys = [options.publicKey, ...(options.previousPublicKeys ?? [])]
    .filter((k): k is string => Boolean(k))
    .map((k) => {
      const bytes = decodeBase64Url(k)
      if (bytes?.length !== 32) throw new TypeError('public keys must be 32 bytes of base64url')
      return createVerifier(bytes)
    })
  // Only successes are cached, keyed by the whole `sig` (payload and signature bytes): a
  // failure is never remembered as a success, and expiry, method, bucket and path are
  // still checked on every request.
  const verified = new LRUCache<string, PresignPayload>({ max: VERIFIED_SIGS })
  const matchesBearer = options.bearerToken ? createBearerMatcher(options.bearerToken) : undefined
  const now = options.now ?? Date.now

  const { limiter, onLimited } = options

  function check(request: AuthRequest): Principal {
    if (request.sig !== undefined) {
      if (keys.length === 0) throw new AuthError('presigned links not enabled', 'no public_key configured')
      let payload = verified.get(request.sig)
      if (!payload) {
        // A client whose failures emptied its bucket gets no more verifications. Bearer
        // tokens and links already verified cost microseconds and are still checked, so a
        // service sharing the flooding address (NAT, proxy) keeps working.
        const wait = limiter?.retryAfter(clientKey(request.client?.())) ?? 0
        if (wait > 0) throw new AuthRateLimitedError(wait)
        payload = verifySignature(request.sig, keys)
        verified.set(request.sig, payload)
      }
      checkPayload(payload, { method: request.method, bucket: request.bucket, path: request.key }, now())
      return { kind: 'presigned', expiresAt: payload.exp }
    }
    if (request.authorization !== undefined) {
      const match = /^Bearer +([\x21-\x7e]+) *$/i.exec(request.authorization)
      if (!match) throw new AuthError('malformed authorization', 'expected "Authorization: Bearer <token>"')
      if (!matchesBearer) throw new AuthError('bearer tokens not enabled', 'no bearer_token configured')
      if (!matchesBearer(match[1]!)) throw new AuthError('bad token')
      return { kind: 'bearer' }
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
