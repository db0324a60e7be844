import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * Returns a constant-time matcher for one configured token. Both sides are hashed first
 * (as hono's `utils/buffer.ts` does) so neither the content nor the length leaks by timing.
 */
export function createBearerMatcher(token: string): (candidate: string) => boolean {
  const expected = createHash('sha256').update(token).digest()
  return function matchesBearer(candidate: string): boolean {
    return timingSafeEqual(createHash('sha256').update(candidate).digest(), expected)
  }
}
