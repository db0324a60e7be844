/**
 * Who may call the admin endpoints (`/_admin/*`): one function from the `Authorization`
 * header to an admin identity, so every way of being an admin is decided in one place.
 * Today: `auth.admin_token_sha256`. (A scoped `auth.tokens` entry with the `admin` method
 * belongs here too, as one more check in `createAdminAuth`.)
 */
import { createHash, timingSafeEqual } from 'node:crypto'

/** `Authorization: Bearer <token>`, as the object routes parse it (auth/middleware.ts). */
const BEARER = /^Bearer +([\x21-\x7e]+) *$/i

/** An authenticated admin; `id` names how (for logs), never the token. */
export interface AdminIdentity {
  id: string
}

export type AdminAuth = (authorization: string | undefined) => AdminIdentity | undefined

export interface AdminAuthOptions {
  /** Hex SHA-256 of the admin token (`auth.admin_token_sha256`). */
  adminTokenSha256?: string | undefined
}

/**
 * The admin check, or undefined when no admin auth is configured (then the admin endpoints
 * do not exist: 404). The presented token is hashed and the digests compared in constant
 * time: neither its length nor its bytes leak through timing.
 *
 * @example
 * const admin = createAdminAuth({ adminTokenSha256: config.auth.admin_token_sha256 })
 * admin?.(req.headers.authorization) // { id: 'admin_token' } or undefined
 */
export function createAdminAuth(options: AdminAuthOptions): AdminAuth | undefined {
  if (!options.adminTokenSha256) return undefined
  const expected = Buffer.from(options.adminTokenSha256.toLowerCase(), 'hex')
  if (expected.byteLength !== 32) throw new TypeError('adminTokenSha256 must be 64 hex digits')
  return function adminAuth(authorization) {
    const token = authorization === undefined ? undefined : BEARER.exec(authorization)?.[1]
    if (token === undefined) return undefined
    const presented = createHash('sha256').update(token).digest()
    return timingSafeEqual(presented, expected) ? { id: 'admin_token' } : undefined
  }
}
