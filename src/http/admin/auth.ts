/**
 * Who may call the admin endpoints (`/_admin/*`): one function from the `Authorization`
 * header to an admin identity, so every way of being an admin is decided in one place.
 * `auth.admin_token_sha256`, or an `auth.tokens` entry with the `ADMIN` method (whose buckets
 * and prefix then bound what it may purge).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { type TokenEntry, createTokenMatcher, tokenRefusal } from '../../auth/tokens.ts'
import { ForbiddenError } from '../../errors.ts'

/** `Authorization: Bearer <token>`, as the object routes parse it (auth/middleware.ts). */
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i

/** An authenticated admin; `id` names how (for logs), never the token. */
export interface AdminIdentity {
  id: string
  /**
   * Throws `ForbiddenError` (403) when this admin may not act on `key` (a path, or a prefix
   * every affected key starts with) of `bucket`: a scoped token's buckets and prefix.
   */
  check(bucket: string, key: string): void
}

/** The admin token of `auth.admin_token_sha256` may act on everything. */
const UNSCOPED: AdminIdentity = { id: 'admin_token', check() {} }

function scopedAdmin(entry: TokenEntry): AdminIdentity {
  return {
    id: entry.id,
    check(bucket, key) {
      const refused = tokenRefusal(entry, 'ADMIN', bucket, key)
      if (refused) throw new ForbiddenError('token scope', refused, entry.id)
    },
  }
}

export type AdminAuth = (authorization: string | undefined) => AdminIdentity | undefined

export interface AdminAuthOptions {
  /** Hex SHA-256 of the admin token (`auth.admin_token_sha256`). */
  adminTokenSha256?: string | undefined
  /** `auth.tokens`: those with the `ADMIN` method are admins within their scope. */
  tokens?: readonly TokenEntry[]
}

/**
 * The admin check, or undefined when no admin auth is configured (then the admin endpoints
 * do not exist: 404). The presented token is hashed and the digests compared in constant
 * time: neither its length nor its bytes leak through timing.
 *
 * @example
 * const admin = createAdminAuth({ adminTokenSha256: config.auth.admin_token_sha256, tokens: config.auth.tokens })
 * admin?.(req.headers.authorization) // { id: 'admin_token', check } or undefined
 */
export function createAdminAuth(options: AdminAuthOptions): AdminAuth | undefined {
  const adminTokens = (options.tokens ?? []).filter((entry) => entry.methods.includes('ADMIN'))
  if (!options.adminTokenSha256 && adminTokens.length === 0) return undefined
  const expected = options.adminTokenSha256 ? Buffer.from(options.adminTokenSha256.toLowerCase(), 'hex') : undefined
  if (expected !== undefined && expected.byteLength !== 32) throw new TypeError('adminTokenSha256 must be 64 hex digits')
  const findToken = adminTokens.length > 0 ? createTokenMatcher(adminTokens) : undefined
  return function adminAuth(authorization) {
    const token = authorization === undefined ? undefined : BEARER.exec(authorization)?.[1]
    if (token === undefined) return undefined
    if (expected && timingSafeEqual(createHash('sha256').update(token).digest(), expected)) return UNSCOPED
    const entry = findToken?.(token)
    return entry && scopedAdmin(entry)
  }
}
