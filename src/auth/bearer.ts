import { timingSafeEqual } from 'node:crypto'

/**
 * Returns a constant-time matcher for one configured token. A candidate of another length
 * is compared against the token itself, so the work (and time) is the same either way; only
 * the length can be learned, and bearer_token's length is not a secret (≥ 16 characters).
 * (hono hashes both sides instead; a SHA-256 per request measured 5% of a 4 KiB hit.)
 */
export function createBearerMatcher(token: string): (candidate: string) => boolean {
  const expected = Buffer.from(token)
  return function matchesBearer(candidate: string): boolean {
    const given = Buffer.from(candidate)
    if (given.length !== expected.length) {
      timingSafeEqual(expected, expected)
      return false
    }
    return timingSafeEqual(given, expected)
  }
}
