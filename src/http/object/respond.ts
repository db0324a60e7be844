/**
 * The one error path of the object routes: a domain error (or a bug) becomes an HTTP error
 * with `toHttpError`, is logged and counted once, and is written by the front end.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { AuthError, AuthRateLimitedError, ForbiddenError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import type { ReportError } from '../../sentry.ts'
import type { Telemetry } from '../../metrics.ts'
import { toHttpError } from '../errors.ts'
import { closeIfBodyUnread } from '../unread-body.ts'
import type { FrontEnd } from './front-end.ts'

/** The object routes' pattern, as reported to Sentry (never the path itself: keys may be private). */
export const OBJECT_ROUTE = '/:bucket_id/*path'

/** Writes a small JSON response (Node drops the body itself when the request was HEAD). */
export function sendJson(outgoing: ServerResponse, status: number, body: unknown, headers?: OutgoingHttpHeaders): void {
  const json = JSON.stringify(body)
  outgoing.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(json), 'X-Content-Type-Options': 'nosniff', ...headers })
  outgoing.end(json)
}

/** Counts the request once its response is complete (at once when it already is: no listener). */
export function countWhenDone(telemetry: Telemetry, outgoing: ServerResponse, method: string): void {
  if (outgoing.writableEnded) telemetry.request(method, outgoing.statusCode)
  else outgoing.once('finish', () => telemetry.request(method, outgoing.statusCode))
}

export interface ErrorResponderOptions {
  frontEnd: FrontEnd
  telemetry: Telemetry
  logger: Logger
  /** Errors that are no domain error (bugs): Sentry, when configured. */
  reportError?: ReportError
}

/** The error response for a failed request, or, once its headers went out, a cut connection. */
export type FailRequest = (outgoing: ServerResponse, method: string, error: unknown) => undefined

export function createErrorResponder(options: ErrorResponderOptions): FailRequest {
  const { frontEnd, telemetry, logger, reportError } = options
  return function failRequest(outgoing, method, error) {
    if (error instanceof AuthError) {
      telemetry.authFailure(error.reason)
      logger.info('auth failed', { method, reason: error.reason, detail: error.message })
    }
    if (error instanceof ForbiddenError) {
      telemetry.authForbidden(error.tokenId === undefined ? 'presigned' : 'bearer', error.tokenId)
      logger.info('auth forbidden', { method, reason: error.reason, token: error.tokenId, detail: error.message })
    }
    // Logged once per client when its bucket empties (app.ts), not per refused request.
    if (error instanceof AuthRateLimitedError) telemetry.authFailure('rate limited')
    const mapped = toHttpError(error)
    if (mapped.status >= 500) logger.warn('request failed', { method, status: mapped.status, err: error })
    if (mapped.status === 500) reportError?.(error, { method, route: OBJECT_ROUTE })
    if (outgoing.headersSent) {
      outgoing.destroy()
      return
    }
    // A refused upload is not read to its end: the connection closes after the answer.
    closeIfBodyUnread(outgoing)
    frontEnd.writeError(outgoing, mapped)
    return
  }
}
