/** What the S3 operations share: per handler (`S3Context`) and per request (`S3Request`). */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ObjectContext } from '../http/object/types.ts'
import type { ObjectService } from '../objects/index.ts'
import type { Store } from '../stores/types.ts'
import type { S3Method } from './auth/scope.ts'
import type { VerifiedRequest } from './auth/sigv4.ts'
import { S3Error, notImplemented } from './errors.ts'
import type { QueryBag } from './query.ts'

export interface S3Context {
  objects: ObjectService
  /** For the shared GET/HEAD handlers (http/object/get.ts, head.ts). */
  object: ObjectContext
  stores: ReadonlyMap<string, Store>
  region: string
  /** Bodies larger than this are refused (cache.max_upload_size). */
  maxUploadSize: number
}

export interface S3Request {
  incoming: IncomingMessage
  outgoing: ServerResponse
  method: S3Method
  bucket: string
  /** Undefined for bucket-level operations. */
  key?: string
  params: QueryBag
  verified: VerifiedRequest
  store: Store
  /** `x-amz-request-id`: GetObject and HeadObject pass it to the shared read handlers; other answers have it added by their tagged `writeHead` (request-id.ts). */
  requestId: string
}

/** The store's optional operation, or NotImplemented when this store (a test double) lacks it. */
export function storeOp<K extends 'list' | 'delete' | 'copy' | 'createMultipart' | 'uploadPart' | 'completeMultipart' | 'abortMultipart' | 'listParts'>(
  store: Store,
  name: K,
): NonNullable<Store[K]> {
  const op = store[name]
  if (!op) throw notImplemented(`${name} on store "${store.id}" (type ${store.type})`)
  return op.bind(store) as NonNullable<Store[K]>
}

/** An abort signal for the request: fires when the client goes away before its body is complete. */
export function clientGone(incoming: IncomingMessage): { signal: AbortSignal; done(): void } {
  const controller = new AbortController()
  const onClose = () => {
    if (!incoming.complete) controller.abort(new S3Error('IncompleteBody', 'client closed the connection during the request'))
  }
  incoming.once('close', onClose)
  return { signal: controller.signal, done: () => incoming.off('close', onClose) }
}
