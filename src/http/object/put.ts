import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { isValidContentType } from '../../content-type.ts'
import type { Principal } from '../../auth/middleware.ts'
import { BadRequestError, PreconditionFailedError, RequestAbortedError, UnsupportedMediaTypeError } from '../../errors.ts'
import type { Store } from '../../stores/types.ts'
import { evaluatePreconditions } from '../conditional.ts'
import { sendJson } from './respond.ts'
import type { ObjectContext } from './types.ts'

/** PUT: header checks, If-Match, then the upload, watched for its arrival rate when configured. */
export function handlePut(ctx: ObjectContext, incoming: IncomingMessage, outgoing: ServerResponse, store: Store, key: string, principal?: Principal): Promise<void> {
  const unwatch = ctx.watchUpload?.(incoming)
  const put = upload(ctx, incoming, outgoing, store, key, principal)
  return unwatch ? put.finally(unwatch) : put
}

async function upload(ctx: ObjectContext, incoming: IncomingMessage, outgoing: ServerResponse, store: Store, key: string, principal: Principal | undefined): Promise<void> {
  const declared = incoming.headers['content-length']
  const size = declared === undefined ? undefined : Number(declared)
  if (size !== undefined && !Number.isSafeInteger(size)) throw new BadRequestError('invalid Content-Length')
  const contentType = incoming.headers['content-type']
  if (contentType !== undefined && !isValidContentType(contentType)) throw new BadRequestError('invalid Content-Type')
  // A v2 link's `ct` and `ms`: checked before anything is read or asked of the store.
  const linkType = principal?.kind === 'presigned' ? principal.contentType : undefined
  if (linkType !== undefined && !sameMediaType(contentType, linkType)) throw new UnsupportedMediaTypeError(`this link accepts Content-Type ${linkType} only`)
  const maxSize = principal?.kind === 'presigned' ? principal.maxSize : undefined
  const ifNoneMatch = incoming.headers['if-none-match']
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') throw new BadRequestError('If-None-Match on PUT must be "*"')
  // Watched from before the first await: a client may leave during the If-Match HEAD.
  const aborted = new AbortController()
  const onClose = () => {
    if (!incoming.complete) aborted.abort(new RequestAbortedError('client closed the connection during the upload'))
  }
  incoming.once('close', onClose)
  try {
    const ifMatch = await resolveIfMatch(ctx, store, key, incoming.headers['if-match'])
    aborted.signal.throwIfAborted()
    const meta = await ctx.objects.write(store, key, incoming, {
      contentType,
      size,
      ifMatch,
      ifNoneMatch: ifNoneMatch === undefined ? undefined : '*',
      signal: aborted.signal,
      maxSize,
    })
    const headers: OutgoingHttpHeaders = {}
    if (meta.etag) headers.ETag = meta.etag
    sendJson(outgoing, 200, { bucket: store.id, key, size: meta.size, content_type: meta.contentType, etag: meta.etag ?? null }, headers)
  } finally {
    incoming.off('close', onClose)
  }
}

/**
 * If-Match on PUT: one strong tag goes to the store as is (checked atomically where the
 * store supports it). `*`, a list or a weak tag is evaluated here against the current
 * object (RFC 9110 §13.1.1) and then pinned to its actual ETag for the store.
 */
async function resolveIfMatch(ctx: ObjectContext, store: Store, key: string, header: string | undefined): Promise<string | undefined> {
  const value = header?.trim()
  if (!value) return undefined
  if (/^"[^"]*"$/.test(value)) return value
  const current = await ctx.objects.head(store, key)
  if (evaluatePreconditions('PUT', { ifMatch: value }, current?.meta ?? null) === 'precondition-failed') {
    throw new PreconditionFailedError('If-Match did not match the current object', { current: current?.meta })
  }
  return current?.meta.etag
}

/**
 * The declared Content-Type against a link's `ct`: type and subtype compare case-insensitively
 * (RFC 9110 §8.3.1); a `ct` with parameters (`; charset=utf-8`) must be matched exactly, one
 * without them accepts any parameters.
 */
export function sameMediaType(declared: string | undefined, required: string): boolean {
  if (declared === undefined) return false
  const normalize = (value: string) => value.split(';').map((part) => part.trim()).join('; ').toLowerCase()
  if (required.includes(';')) return normalize(declared) === normalize(required)
  return declared.split(';', 1)[0]!.trim().toLowerCase() === required.trim().toLowerCase()
}
