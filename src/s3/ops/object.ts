/**
 * GetObject and HeadObject go through the object routes' own handlers (http/object/get.ts,
 * head.ts): same cache key, singleflight, pages and disk tier as a bearer GET or a presigned
 * link. PutObject goes through `objects.write` (the PUT path: same invalidation); DeleteObject
 * and CopyObject invalidate the key they change.
 */
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import type { Principal } from '../../auth/middleware.ts'
import { DEFAULT_CONTENT_TYPE, contentTypeFromKey, isValidContentType } from '../../content-type.ts'
import { handleGet } from '../../http/object/get.ts'
import { handleHead } from '../../http/object/head.ts'
import { decodeKey } from '../../stores/key.ts'
import { authorize } from '../auth/scope.ts'
import { type S3Context, type S3Request, clientGone, storeOp } from '../context.ts'
import { S3Error, notImplemented } from '../errors.ts'
import { headerOf } from '../headers.ts'
import { openBody } from '../payload.ts'
import { hasAny, single } from '../query.ts'
import { requestIdHeader } from '../request-id.ts'
import { sendEmpty, sendXml } from '../respond.ts'
import { xmlDocument } from '../xml.ts'

const OVERRIDES: [param: string, header: string][] = [
  ['response-content-type', 'Content-Type'],
  ['response-content-language', 'Content-Language'],
  ['response-expires', 'Expires'],
  ['response-cache-control', 'Cache-Control'],
  ['response-content-disposition', 'Content-Disposition'],
  ['response-content-encoding', 'Content-Encoding'],
]

/** `response-*` query parameters (GetObject/HeadObject): headers that replace the object's own on a 200/206. */
function responseOverrides(request: S3Request): OutgoingHttpHeaders | undefined {
  if (!hasAny(request.params)) return undefined
  let headers: OutgoingHttpHeaders | undefined
  for (const [param, header] of OVERRIDES) {
    const value = single(request.params, param)
    if (value === undefined) continue
    if (value.length > 1024 || !/^[\t\x20-\x7e\x80-\xff]*$/.test(value)) throw new S3Error('InvalidArgument', `${param} is not a valid header value`)
    ;(headers ??= {})[header] = value
  }
  return headers
}

/** The shared handlers build their own headers; the overrides are laid over them on success only. */
function overrideOnSuccess(outgoing: ServerResponse, overrides: OutgoingHttpHeaders): void {
  const writeHead = outgoing.writeHead.bind(outgoing) as (status: number, headers?: OutgoingHttpHeaders) => ServerResponse
  outgoing.writeHead = ((status: number, headers?: OutgoingHttpHeaders) => writeHead(status, status < 300 ? { ...headers, ...overrides } : headers)) as ServerResponse['writeHead']
}

/** A signed header stands for its client as a bearer token does: one principal for all of them (the headers of a hit are then the bearer's, built once per object). */
const HEADER_SIGNED: Principal = Object.freeze({ kind: 'bearer' })

function principalOf(request: S3Request): Principal {
  const { expiresAt } = request.verified
  return expiresAt === undefined ? HEADER_SIGNED : { kind: 'presigned', expiresAt: Math.floor(expiresAt) }
}

/** A memory hit is answered synchronously (no promise), as on the object routes. */
export function getObject(ctx: S3Context, request: S3Request): Promise<void> | undefined {
  const overrides = responseOverrides(request)
  if (overrides) overrideOnSuccess(request.outgoing, overrides)
  return handleGet(ctx.object, request.incoming, request.outgoing, request.store, request.key!, principalOf(request), requestIdHeader(request.requestId))
}

export async function headObject(ctx: S3Context, request: S3Request): Promise<void> {
  const overrides = responseOverrides(request)
  if (overrides) overrideOnSuccess(request.outgoing, overrides)
  await handleHead(ctx.object, request.incoming, request.outgoing, request.store, request.key!, principalOf(request), false, requestIdHeader(request.requestId))
}

/**
 * Write headers asking for something this gateway would not do (encryption, object lock, tags,
 * a public ACL, another storage class): NotImplemented, rather than a success that ignored them.
 * User metadata (`x-amz-meta-*`) is accepted and not stored (see README).
 */
export function refuseUnsupportedWriteHeaders(request: S3Request): void {
  const { headers } = request.incoming
  for (const name of Object.keys(headers)) {
    if (name.startsWith('x-amz-server-side-encryption') || name.startsWith('x-amz-object-lock-') || name === 'x-amz-tagging' || name === 'x-amz-website-redirect-location' || name.startsWith('x-amz-grant-')) {
      throw notImplemented(`the ${name} header`)
    }
  }
  const acl = headerOf(request.incoming, 'x-amz-acl')
  if (acl !== undefined && acl !== 'private' && acl !== 'bucket-owner-full-control') throw notImplemented(`x-amz-acl: ${acl.slice(0, 64)}`)
  const storageClass = headerOf(request.incoming, 'x-amz-storage-class')
  if (storageClass !== undefined && storageClass !== 'STANDARD') throw notImplemented(`x-amz-storage-class: ${storageClass.slice(0, 64)}`)
}

function contentTypeOf(request: S3Request): string | undefined {
  const value = request.incoming.headers['content-type']
  if (value !== undefined && !isValidContentType(value)) throw new S3Error('InvalidArgument', 'invalid Content-Type')
  return value
}

/** If-None-Match: * (create only) and If-Match: "etag" (replace only that version), as S3's conditional writes. */
function writeConditions(request: S3Request): { ifNoneMatch?: '*'; ifMatch?: string } {
  const { headers } = request.incoming
  const ifNoneMatch = headers['if-none-match']?.trim()
  if (ifNoneMatch !== undefined && ifNoneMatch !== '*') throw new S3Error('NotImplemented', 'If-None-Match on PutObject must be *')
  const ifMatch = headers['if-match']?.trim()
  if (ifMatch !== undefined && !/^"[^"]*"$/.test(ifMatch)) throw new S3Error('InvalidArgument', 'If-Match on PutObject must be one strong ETag')
  return { ifNoneMatch: ifNoneMatch === '*' ? '*' : undefined, ifMatch }
}

export async function putObject(ctx: S3Context, request: S3Request): Promise<void> {
  const { incoming, outgoing, store, key } = request
  refuseUnsupportedWriteHeaders(request)
  const contentType = contentTypeOf(request)
  const conditions = writeConditions(request)
  const { body, size } = openBody(incoming, request.verified, ctx.maxUploadSize, request.params)
  const unwatch = ctx.object.watchUpload?.(incoming)
  const gone = clientGone(incoming)
  try {
    const meta = await ctx.objects.write(store, key!, body, { contentType, size, ...conditions, signal: gone.signal })
    sendEmpty(outgoing, 200, meta.etag ? { ETag: meta.etag } : undefined)
  } catch (error) {
    // The body's own failure (a signature, a checksum) says more than the store's "body failed".
    throw body.errored instanceof S3Error ? body.errored : error
  } finally {
    gone.done()
    unwatch?.()
  }
}

export async function deleteObject(ctx: S3Context, request: S3Request): Promise<void> {
  // Invalidated even when the store fails: it may have deleted the object all the same.
  try {
    await storeOp(request.store, 'delete')(request.key!)
  } finally {
    await ctx.objects.invalidate(request.store, request.key!)
  }
  sendEmpty(request.outgoing, 204)
}

/** `x-amz-copy-source: [/]bucket/key` (URL-encoded) → its key, in this request's bucket only. */
function copySourceKey(request: S3Request): string {
  const header = headerOf(request.incoming, 'x-amz-copy-source') ?? ''
  const source = header.startsWith('/') ? header.slice(1) : header
  if (source.includes('?')) throw notImplemented('copying a version (versionId in x-amz-copy-source)')
  const slash = source.indexOf('/')
  if (slash <= 0) throw new S3Error('InvalidArgument', 'x-amz-copy-source must be bucket/key')
  let bucket: string
  try {
    bucket = decodeURIComponent(source.slice(0, slash))
  } catch (error) {
    throw new S3Error('InvalidArgument', 'malformed percent-encoding in x-amz-copy-source', { cause: error })
  }
  if (bucket !== request.bucket) throw notImplemented('CopyObject between buckets (source and destination must be one bucket id)')
  try {
    return decodeKey(source.slice(slash + 1))
  } catch (error) {
    throw new S3Error('InvalidArgument', 'invalid key in x-amz-copy-source', { cause: error })
  }
}

export async function copyObject(ctx: S3Context, request: S3Request): Promise<void> {
  const { incoming, store, key } = request
  for (const name of Object.keys(incoming.headers)) {
    if (name.startsWith('x-amz-copy-source-')) throw notImplemented(`${name} on CopyObject`)
  }
  refuseUnsupportedWriteHeaders(request)
  const source = copySourceKey(request)
  // Reading the source is a GET in the key's scope.
  authorize(request.verified.credential, 'GET', request.bucket, source)
  const directive = headerOf(incoming, 'x-amz-metadata-directive')?.toUpperCase() ?? 'COPY'
  if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error('InvalidArgument', 'x-amz-metadata-directive must be COPY or REPLACE')
  if (directive === 'COPY' && source === key) throw new S3Error('InvalidRequest', 'this copy request is illegal because it is trying to copy an object to itself without changing anything')
  // REPLACE sets the metadata anew: without a Content-Type the object is typed as a PutObject
  // would type it by its key (S3 gives it its default type), never left with the source's.
  const contentType = directive === 'REPLACE' ? (contentTypeOf(request) ?? contentTypeFromKey(key!) ?? DEFAULT_CONTENT_TYPE) : undefined
  let meta
  try {
    meta = await storeOp(store, 'copy')(source, key!, { contentType })
  } finally {
    // Even when the store failed: it may have written the destination all the same.
    await ctx.objects.invalidate(store, key!)
  }
  if (!meta) throw new S3Error('NoSuchKey', 'the specified copy source does not exist')
  sendXml(request.outgoing, 200, xmlDocument('CopyObjectResult', [
    ['ETag', meta.etag],
    ['LastModified', meta.lastModified ?? new Date()],
  ]))
}
