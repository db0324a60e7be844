import type { IncomingMessage, OutgoingMessage, ServerResponse } from 'node:http'
import type { Logger } from '../../log.ts'
import type { ObjectService } from '../../objects/index.ts'
import type { ObjectTarget } from './target.ts'

/** The part of a response a `decorate` hook may touch: its headers, before any is sent. */
export type HeaderSink = Pick<OutgoingMessage, 'setHeader' | 'appendHeader' | 'getHeader' | 'hasHeader' | 'removeHeader'>

/**
 * Synchronous hook points of the object routes (CORS uses both). Neither may await: a memory
 * hit is answered with no promise at all, hooks included. Each is called at most once per
 * request; with no hooks installed nothing is allocated for them.
 */
export interface ObjectHooks {
  /**
   * Runs once the target is parsed, before the method check and auth. Return true when it
   * answered the request (it owns `outgoing` from then on; nothing else runs, not even
   * `decorate`): a CORS preflight `OPTIONS` is answered here rather than refused with 405.
   */
  beforeAuth?: (incoming: IncomingMessage, outgoing: ServerResponse, target: ObjectTarget) => boolean
  /**
   * Adds headers to every object response that follows — 200, 206, 304, 412, 416, 4xx and
   * 5xx errors — by setting them on `headers` before anything is written. `target` is
   * undefined when the path itself was refused (400). A header of the same name that the
   * response sets itself wins (object responses set no `Vary`).
   */
  decorate?: (incoming: IncomingMessage, headers: HeaderSink, target: ObjectTarget | undefined) => void
}

/** What the get/head/put handlers share, built once per handler. */
export interface ObjectContext {
  objects: ObjectService
  logger: Logger
  now: () => number
  /** Watches a PUT body's arrival rate until the returned function is called (limits.min_upload_bytes_per_second). */
  watchUpload?: (incoming: IncomingMessage) => () => void
}
