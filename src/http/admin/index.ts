/**
 * The admin endpoints under `/_admin/` (no store id starts with `_`, so they never shadow a
 * bucket). They exist only when admin auth is configured; otherwise `/_admin/*` is a 404 like
 * any unknown path.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { AuthError, MethodNotAllowedError, NotFoundError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import type { ObjectService } from '../../objects/index.ts'
import { toHttpError } from '../errors.ts'
import { sendJson } from '../object/respond.ts'
import { closeIfBodyUnread } from '../unread-body.ts'
import type { AdminAuth } from './auth.ts'
import { createPurgeHandler } from './purge.ts'

export { type AdminAuth, type AdminIdentity, createAdminAuth } from './auth.ts'

export const ADMIN_PREFIX = '/_admin/'

export interface AdminHandlerDeps {
  auth: AdminAuth
  objects: ObjectService
  buckets: ReadonlySet<string>
  logger: Logger
  reportError?: (error: unknown) => void
}

/** `path` starts with `ADMIN_PREFIX`; the query is ignored. */
export function createAdminHandler(deps: AdminHandlerDeps) {
  const purge = createPurgeHandler(deps)
  return async function adminHandler(incoming: IncomingMessage, outgoing: ServerResponse, path: string): Promise<void> {
    try {
      if (path !== '/_admin/purge') throw new NotFoundError('no such admin endpoint')
      if (incoming.method !== 'POST') throw new MethodNotAllowedError(['POST'])
      const admin = deps.auth(incoming.headers.authorization)
      if (!admin) throw new AuthError('bad admin token', 'an admin token is required (Authorization: Bearer <token>)')
      const { status, body } = await purge(incoming, admin)
      sendJson(outgoing, status, body)
    } catch (error) {
      const mapped = toHttpError(error)
      if (mapped.status >= 500) {
        deps.logger.error('admin request failed', { path, err: error })
        deps.reportError?.(error)
      }
      if (outgoing.headersSent) return void outgoing.destroy()
      // A refused request's body is not read to its end: the connection closes after the answer.
      closeIfBodyUnread(outgoing)
      sendJson(outgoing, mapped.status, { error: mapped.error, message: mapped.message }, mapped.headers)
    }
  }
}
