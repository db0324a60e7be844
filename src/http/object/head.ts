import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Principal } from '../../auth/middleware.ts'
import { NotFoundError, PreconditionFailedError } from '../../errors.ts'
import type { Store } from '../../stores/types.ts'
import { objectHeaders, preconditionStatus, validatorHeaders, withExtra } from './read-response.ts'
import type { ObjectContext } from './types.ts'

/** `?prefetch=` as Cachegate reads it: `1`, `true` (any case) warm the cache; `0`, `false` or nothing do not. */
export function wantsPrefetch(params: URLSearchParams | undefined): boolean {
  const value = params?.get('prefetch')
  return value === '1' || (value?.length === 4 && value.toLowerCase() === 'true')
}

/** HEAD: metadata from the cache or the store; `prefetch` warms the cache in the background; `extra` as for handleGet. */
export async function handleHead(
  ctx: ObjectContext,
  incoming: IncomingMessage,
  outgoing: ServerResponse,
  store: Store,
  key: string,
  principal: Principal,
  prefetch: boolean,
  extra?: OutgoingHttpHeaders,
): Promise<void> {
  const found = await ctx.objects.head(store, key)
  if (!found) throw new NotFoundError('no such object')
  const failed = preconditionStatus('HEAD', incoming.headers, found.meta)
  if (failed === 'precondition-failed') throw new PreconditionFailedError('If-Match or If-Unmodified-Since did not hold', { current: found.meta })
  if (failed === 'not-modified') {
    outgoing.writeHead(304, withExtra(validatorHeaders(found.meta, principal, ctx.now()), extra)).end()
    return
  }
  if (prefetch) ctx.objects.prefetch(store, key, found.meta)
  // Node sends no body for a HEAD request, whatever end() is given.
  outgoing.writeHead(200, withExtra(objectHeaders(found.meta, found.result === 'hit', principal, ctx.now(), found.freshness), extra)).end()
}
