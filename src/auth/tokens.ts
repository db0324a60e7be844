/**
 * Scoped bearer tokens (`auth.tokens`): the config holds each token's SHA-256, never the token,
 * with the buckets, methods and key prefix it may use. `cachegate token new` mints one.
 */
import { createHash, randomBytes } from 'node:crypto'

/** What a token may be allowed: the object methods, and ADMIN (operator endpoints such as purge). */
export const TOKEN_METHODS = ['GET', 'HEAD', 'PUT', 'ADMIN'] as const
export type TokenMethod = (typeof TOKEN_METHODS)[number]

/** One `auth.tokens` entry, as the config schema outputs it. */
export interface TokenEntry {
  /** Names the token in logs and metrics (the token itself never appears). */
  id: string
  /** Hex SHA-256 of the token, 64 lowercase digits. */
  sha256: string
  /** Bucket ids it may use; `*` alone means every bucket. */
  buckets: readonly string[]
  methods: readonly TokenMethod[]
  /** Keys must start with this (ends with `/`); absent: any key. */
  prefix?: string
}

/** Hex SHA-256 of a token, as `auth.tokens[].sha256` holds it. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** A fresh token: `cg_` and 32 random bytes in base64url (256 bits; `cg_` makes it greppable in leaks). */
export function generateToken(): string {
  return `cg_${randomBytes(32).toString('base64url')}`
}

/**
 * Returns the lookup for presented tokens: the entry whose digest matches, or undefined.
 *
 * The lookup is a Map keyed by the hex SHA-256 of the presented token, not a comparison with
 * the secret. What its timing can reveal is how much of a *digest* matched a stored one, and
 * learning a digest prefix does not help anyone construct a token with it (SHA-256 is
 * preimage-resistant), so no timing-safe compare is needed: the secret itself is never
 * compared. Tokens are 256-bit random values, so the unsalted digest is not guessable either.
 *
 * @example
 * const find = createTokenMatcher(config.auth.tokens)
 * const entry = find(presented) // then tokenAllows(entry, 'GET', 'media', 'a.jpg')
 */
export function createTokenMatcher(tokens: readonly TokenEntry[]): (token: string) => TokenEntry | undefined {
  const byDigest = new Map<string, TokenEntry>()
  for (const entry of tokens) {
    if (!/^[0-9a-f]{64}$/.test(entry.sha256)) throw new TypeError(`token ${entry.id}: sha256 must be 64 lowercase hex digits`)
    if (byDigest.has(entry.sha256)) throw new TypeError(`token ${entry.id}: the same token is configured twice`)
    byDigest.set(entry.sha256, entry)
  }
  return function findToken(token) {
    return byDigest.get(hashToken(token))
  }
}

/**
 * Why `entry` may not do `method` on `bucket`/`key`, as a message safe to show (it names the
 * token's id, never the token), or undefined when it may. GET allows HEAD, as a link does.
 */
export function tokenRefusal(entry: TokenEntry, method: string, bucket: string, key: string): string | undefined {
  const allowed = (entry.methods as readonly string[]).includes(method) || (method === 'HEAD' && entry.methods.includes('GET'))
  if (!allowed) return `token ${entry.id} may not ${method}`
  if (!(entry.buckets.includes('*') || entry.buckets.includes(bucket))) return `token ${entry.id} may not use bucket ${bucket}`
  if (entry.prefix !== undefined && !key.startsWith(entry.prefix)) return `token ${entry.id} is for prefix ${entry.prefix} only`
  return undefined
}

/** True when `entry` may do `method` (GET, HEAD, PUT or ADMIN) on `bucket`/`key`. */
export function tokenAllows(entry: TokenEntry, method: string, bucket: string, key: string): boolean {
  return tokenRefusal(entry, method, bucket, key) === undefined
}
