import { AuthError } from '../errors.ts'
import { createBearerMatcher } from './bearer.ts'
import { decodeBase64Url } from './keys.ts'
import { verifyPresigned } from './presign.ts'

export interface AuthOptions {
  publicKey?: string
  previousPublicKeys?: string[]
  bearerToken?: string
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
      return bytes
    })
  const matchesBearer = options.bearerToken ? createBearerMatcher(options.bearerToken) : undefined
  const now = options.now ?? Date.now

  return function authenticate(request: AuthRequest): Principal {
    if (request.sig !== undefined) {
      if (keys.length === 0) throw new AuthError('presigned links not enabled', 'no public_key configured')
      const payload = verifyPresigned(request.sig, { method: request.method, bucket: request.bucket, path: request.key }, keys, now())
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
}
