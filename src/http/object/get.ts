import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Principal } from '../../auth/middleware.ts'
import { NotFoundError, PreconditionFailedError } from '../../errors.ts'
import type { OpenObject } from '../../objects/index.ts'
import type { Store } from '../../stores/types.ts'
import { preconditionStatus, validatorHeaders, withExtra, writeObject } from './read-response.ts'
import type { ObjectContext } from './types.ts'

/**
 * GET: a memory hit is served synchronously (no promise, no listener of its own); anything
 * else opens the object first. Throws (or rejects with) domain errors for the error path.
 * `extra`: headers a front end adds to every answer written here (S3's request id).
 */
export function handleGet(
  ctx: ObjectContext,
  incoming: IncomingMessage,
  outgoing: ServerResponse,
  store: Store,
  key: string,
  principal: Principal,
  extra?: OutgoingHttpHeaders,
): Promise<void> | undefined {
  const inMemory = ctx.objects.openInMemory(store, key, 'GET')
  if (inMemory) return serveObject(ctx, incoming, outgoing, inMemory, principal, extra)
  return ctx.objects.open(store, key, incoming.headers.range !== undefined, 'GET').then((object) => {
    if (!object) throw new NotFoundError('no such object')
    return serveObject(ctx, incoming, outgoing, object, principal, extra)
  })
}

/** A GET of an open object: preconditions (RFC 9110 §13.2.2), then the body. Releases the object on failure. */
function serveObject(ctx: ObjectContext, incoming: IncomingMessage, outgoing: ServerResponse, object: OpenObject, principal: Principal, extra: OutgoingHttpHeaders | undefined): Promise<void> | undefined {
  const failed = preconditionStatus('GET', incoming.headers, object.meta)
  if (failed !== undefined) {
    object.release()
    if (failed === 'precondition-failed') throw new PreconditionFailedError('If-Match or If-Unmodified-Since did not hold', { current: object.meta })
    outgoing.writeHead(304, withExtra(validatorHeaders(object.meta, principal, ctx.now()), extra))
    outgoing.end()
    return undefined
  }
  let pending: Promise<void> | undefined
  try {
    pending = writeObject(outgoing, object, incoming.headers, principal, ctx.now(), ctx.logger, extra)
  } catch (error) {
    object.release()
    throw error
  }
  // Only an object that needed I/O gets a handler of its own.
  return pending?.catch((error: unknown) => {
    object.release()
    throw error
  })
}
