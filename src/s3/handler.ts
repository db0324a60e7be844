/**
 * The S3 front end: a SigV4-signed request on the gateway's listener (app.ts routes it here)
 * is verified, scoped, routed to its operation and answered in S3's terms. Reads go through
 * the object routes' handlers, so both front ends share one cache, one singleflight.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { S3Principal } from '../http/access-log.ts'
import type { ObjectHooks } from '../http/object/index.ts'
import { type ObjectTarget, ParsedPaths } from '../http/object/target.ts'
import type { Logger } from '../log.ts'
import type { Telemetry } from '../metrics.ts'
import type { ObjectService } from '../objects/index.ts'
import { countWhenDone } from '../http/object/respond.ts'
import { closeIfBodyUnread } from '../http/unread-body.ts'
import type { Store } from '../stores/types.ts'
import { authorize, type S3Credential } from './auth/scope.ts'
import { createSigV4Verifier } from './auth/sigv4.ts'
import type { S3Context, S3Request } from './context.ts'
import { S3Error, toS3Error } from './errors.ts'
import { getBucketLocation, deleteObjects, headBucket, listBuckets, listObjects, listObjectsV2 } from './ops/bucket.ts'
import { abortMultipartUpload, completeMultipartUpload, createMultipartUpload, listParts, uploadPart } from './ops/multipart.ts'
import { copyObject, deleteObject, getObject, headObject, putObject } from './ops/object.ts'
import { parseQuery } from './query.ts'
import { requestIds, tagWithRequestId } from './request-id.ts'
import { type Operation, type S3Target, isS3Method, operationOf, parseS3Path } from './route.ts'
import { sendError } from './respond.ts'

export { isSigV4Request } from './auth/sigv4.ts'
export type { S3Credential } from './auth/scope.ts'

/** An operation: a promise only when its answer needs I/O first (GetObject's memory hit needs none). */
type Run = (ctx: S3Context, request: S3Request) => Promise<void> | undefined

const OPERATIONS: Record<Exclude<Operation, 'ListBuckets'>, Run> = {
  HeadBucket: headBucket,
  GetBucketLocation: getBucketLocation,
  ListObjectsV2: listObjectsV2,
  ListObjects: listObjects,
  DeleteObjects: deleteObjects,
  GetObject: getObject,
  HeadObject: headObject,
  PutObject: putObject,
  CopyObject: copyObject,
  DeleteObject: deleteObject,
  CreateMultipartUpload: createMultipartUpload,
  UploadPart: uploadPart,
  CompleteMultipartUpload: completeMultipartUpload,
  AbortMultipartUpload: abortMultipartUpload,
  ListParts: listParts,
}

export interface S3HandlerDeps {
  stores: ReadonlyMap<string, Store>
  objects: ObjectService
  credentials: readonly S3Credential[]
  region: string
  maxUploadSize: number
  telemetry: Telemetry
  logger: Logger
  now?: () => number
  /** `auth.max_link_lifetime` in seconds: presigned URLs expiring later than this from now are refused. */
  maxLinkLifetime?: number
  watchUpload?: (incoming: IncomingMessage) => () => void
  reportError?: (error: unknown) => void
  /** The object routes' hooks: `decorate` (CORS headers) runs on S3 object responses too. */
  hooks?: ObjectHooks
  /** Told the access key of each request whose signature verified (for the access log). */
  onAuthenticated?: (incoming: IncomingMessage, principal: S3Principal) => void
}

/** Handles one S3 request; a promise only when the response needs I/O first (as the object routes' handler). */
export type S3Handler = (incoming: IncomingMessage, outgoing: ServerResponse, path: string, query: string) => Promise<void> | undefined

/**
 * @example
 * const s3 = createS3Handler({ stores, objects, credentials, region: 'us-east-1', maxUploadSize, telemetry, logger })
 * if (isSigV4Request(incoming, query)) return void s3(incoming, outgoing, path, query)?.catch(destroy)
 */
export function createS3Handler(deps: S3HandlerDeps): S3Handler {
  const { stores, telemetry, logger } = deps
  const now = deps.now ?? Date.now
  const verifier = createSigV4Verifier({ credentials: deps.credentials, region: deps.region, now, maxLinkLifetime: deps.maxLinkLifetime })
  const ctx: S3Context = {
    objects: deps.objects,
    object: { objects: deps.objects, logger, now, watchUpload: deps.watchUpload },
    stores,
    region: deps.region,
    maxUploadSize: deps.maxUploadSize,
  }
  const nextId = requestIds()
  const { onAuthenticated } = deps
  /** One principal per access key, made once: the access log is told who signed, per request. */
  const principals = new Map(deps.credentials.map((c) => [c, Object.freeze({ kind: 's3', accessKeyId: c.accessKeyId }) as S3Principal]))
  /** Object paths already decoded and checked (filled only after auth, as on the bearer routes). */
  const paths = new ParsedPaths()

  /** Verify, scope, route, run; throws S3 or domain errors. */
  function serve(incoming: IncomingMessage, outgoing: ServerResponse, method: string, path: string, query: string, requestId: string): Promise<void> | undefined {
    if (!isS3Method(method)) throw new S3Error('MethodNotAllowed', `${method} is not an S3 method`)
    const target: S3Target = paths.get(path) ?? parseS3Path(path)
    if (target.key !== undefined) deps.hooks?.decorate?.(incoming, outgoing, { bucket: target.bucket!, key: target.key })
    const params = parseQuery(query)
    const verified = verifier.verify(incoming, path, params)
    // Who signed, even if the operation or the key's scope then refuses: the line names the key.
    onAuthenticated?.(incoming, principals.get(verified.credential)!)
    const operation = operationOf(method, target, params, method === 'PUT' && incoming.headers['x-amz-copy-source'] !== undefined)
    const { credential } = verified
    // The read handlers are given the request id; every other answer gets it from its writeHead.
    if (operation !== 'GetObject' && operation !== 'HeadObject') tagWithRequestId(outgoing, requestId)
    if (operation === 'ListBuckets') {
      if (!credential.methods.has('GET')) throw new S3Error('AccessDenied', 'this access key may not use GET')
      listBuckets(ctx, credential, outgoing)
      return undefined
    }
    const bucket = target.bucket!
    authorize(credential, method, bucket, target.key)
    const store = stores.get(bucket)
    if (!store) throw new S3Error('NoSuchBucket', 'the specified bucket does not exist')
    // The target itself: one that came from `paths` is known there and costs no lookup.
    if (target.key !== undefined) paths.remember(path, target as ObjectTarget)
    return OPERATIONS[operation](ctx, { incoming, outgoing, method, bucket, key: target.key, params, verified, store, requestId })
  }

  function fail(outgoing: ServerResponse, method: string, path: string, requestId: string, error: unknown): void {
    const s3 = toS3Error(error)
    if (s3.code === 'SignatureDoesNotMatch' || s3.code === 'InvalidAccessKeyId' || s3.code === 'RequestTimeTooSkewed' || s3.code === 'AccessDenied') {
      telemetry.authFailure(`s3 ${s3.code}`)
      logger.info('s3 auth failed', { method, code: s3.code })
    }
    if (s3.status >= 500 && s3.code !== 'NotImplemented') logger.warn('s3 request failed', { method, status: s3.status, code: s3.code, err: error })
    if (s3.code === 'InternalError') deps.reportError?.(error)
    if (outgoing.headersSent) {
      outgoing.destroy()
      return
    }
    closeIfBodyUnread(outgoing)
    sendError(outgoing, method, s3, path, requestId)
  }

  /** A memory hit is served synchronously, with no promise or closure of its own (as on the object routes). */
  return function s3Handler(incoming, outgoing, path, query) {
    const method = incoming.method ?? 'GET'
    const requestId = nextId()
    let pending: Promise<void> | undefined
    try {
      pending = serve(incoming, outgoing, method, path, query, requestId)
    } catch (error) {
      fail(outgoing, method, path, requestId, error)
    }
    if (!pending) {
      countWhenDone(telemetry, outgoing, method)
      return undefined
    }
    return pending.catch((error: unknown) => fail(outgoing, method, path, requestId, error)).finally(() => countWhenDone(telemetry, outgoing, method))
  }
}
