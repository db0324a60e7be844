import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { Principal } from '../../auth/middleware.ts'
import { type Bytes, chunksOf, sliceBytes } from '../../cache/bytes.ts'
import { isActiveContentType } from '../../content-type.ts'
import { RangeNotSatisfiableError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import type { FreshnessStatus, OpenObject } from '../../objects/index.ts'
import type { ByteRange, ObjectMeta } from '../../stores/types.ts'
import { type ConditionalHeaders, type PreconditionResult, evaluateIfRange, evaluatePreconditions, httpDate } from '../conditional.ts'
import { type ResolvedRange, contentRange, multipartBoundary, multipartParts, parseRange, resolveRanges } from '../range.ts'

export function conditionalHeaders(headers: IncomingHttpHeaders): ConditionalHeaders {
  return {
    ifMatch: headers['if-match'],
    ifNoneMatch: headers['if-none-match'],
    ifModifiedSince: headers['if-modified-since'],
    ifUnmodifiedSince: headers['if-unmodified-since'],
  }
}

/** Longest a presigned response may be cached by the browser, capped by the link's expiry. */
const MAX_PRESIGNED_AGE = 3600

/** Headers every object response repeats, 304s included (RFC 9110 §15.4.5). */
export function validatorHeaders(meta: ObjectMeta, principal: Principal, nowMs: number): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    // A presigned response must not outlive its signature; a bearer one is for that client only.
    'Cache-Control':
      principal.kind === 'presigned' ? `private, max-age=${Math.max(0, Math.min(MAX_PRESIGNED_AGE, principal.expiresAt - Math.ceil(nowMs / 1000)))}` : 'private, no-cache',
  }
  if (meta.etag) headers.ETag = meta.etag
  if (meta.lastModified) headers['Last-Modified'] = httpDate(meta.lastModified)
  return headers
}

/**
 * The headers of a whole-object memory hit for a bearer client depend on the object alone:
 * built once per cached object. Node only reads them; nobody may mutate the result.
 */
const bearerHitHeaders = new WeakMap<ObjectMeta, OutgoingHttpHeaders>()

function hitHeaders(meta: ObjectMeta, principal: Principal, nowMs: number): OutgoingHttpHeaders {
  if (principal.kind !== 'bearer') return objectHeaders(meta, true, principal, nowMs)
  let headers = bearerHitHeaders.get(meta)
  if (!headers) bearerHitHeaders.set(meta, (headers = objectHeaders(meta, true, principal, nowMs)))
  return headers
}

/**
 * `headers` with a front end's own (S3's request id) laid over them: a copy, since `headers`
 * may be shared (the cached bearer hit headers). Merged here rather than set on the response
 * beforehand: a header set with `setHeader` before `writeHead` sends Node down its slow path,
 * every header through `setHeader`'s checks.
 */
export const withExtra = (headers: OutgoingHttpHeaders, extra: OutgoingHttpHeaders | undefined): OutgoingHttpHeaders => (extra === undefined ? headers : { ...headers, ...extra })

/** `X-CG-Status`: `hit=1|hit=0`, the fallback store that answered a miss, and a hit's freshness. */
function cacheStatus(meta: ObjectMeta, hit: boolean, freshness: FreshnessStatus | undefined): string {
  if (freshness === 'replaced') return 'hit=0; replaced'
  if (freshness !== undefined) return `hit=1; ${freshness}`
  return hit ? 'hit=1' : meta.servedBy ? `hit=0; store=${meta.servedBy}` : 'hit=0'
}

export function objectHeaders(meta: ObjectMeta, hit: boolean, principal: Principal, nowMs: number, freshness?: FreshnessStatus): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    'Content-Type': meta.contentType,
    'Content-Length': meta.size,
    'Accept-Ranges': 'bytes',
    'X-CG-Status': cacheStatus(meta, hit, freshness),
    'X-Content-Type-Options': 'nosniff',
    ...validatorHeaders(meta, principal, nowMs),
  }
  // Uploaded HTML or SVG opened from a link would otherwise run script on the gateway's
  // origin: a sandboxed document gets an opaque origin and no script (CSP3 §6.3.2 sandbox).
  if (isActiveContentType(meta.contentType)) headers['Content-Security-Policy'] = 'sandbox'
  // A v2 link's `fn`/`disp`: per request (these headers are never the shared bearer ones).
  if (principal.kind === 'presigned' && principal.disposition !== undefined) headers['Content-Disposition'] = principal.disposition
  return headers
}

/** What a precondition result turns into, or undefined to go on (RFC 9110 §13.2.2). */
export function preconditionStatus(
  method: 'GET' | 'HEAD',
  headers: IncomingHttpHeaders,
  meta: ObjectMeta,
): Exclude<PreconditionResult, 'proceed'> | undefined {
  // Most requests carry no precondition at all.
  if (!headers['if-match'] && !headers['if-none-match'] && !headers['if-modified-since'] && !headers['if-unmodified-since']) return undefined
  const result = evaluatePreconditions(method, conditionalHeaders(headers), meta)
  return result === 'proceed' ? undefined : result
}

/**
 * Writes a GET response for an open object: 200 or 206 (one range or multipart/byteranges),
 * honouring If-Range; throws `RangeNotSatisfiableError` (416) before writing anything when no
 * range is satisfiable. The caller has already evaluated the other preconditions.
 */
export function writeObject(
  outgoing: ServerResponse,
  object: OpenObject,
  request: IncomingHttpHeaders,
  principal: Principal,
  nowMs: number,
  logger: Logger,
  extra?: OutgoingHttpHeaders,
): Promise<void> | undefined {
  const { meta } = object
  const rangeHeader = request.range
  // RFC 9110 §13.1.5: a failed If-Range means "send the whole thing".
  const resolved =
    rangeHeader !== undefined && evaluateIfRange(request['if-range'] as string | undefined, meta) ? resolveRanges(parseRange(rangeHeader), meta.size) : ({ type: 'full' } as const)

  // Answered on the error path (416 with `Content-Range: bytes */size`); the caller releases.
  if (resolved.type === 'unsatisfiable') throw new RangeNotSatisfiableError(meta)

  // The hot path: a memory hit, whole or one range, written without a single await.
  const bytes = object.bytes
  if (bytes && (resolved.type === 'full' || resolved.ranges.length === 1)) {
    if (resolved.type === 'full') {
      const headers = object.freshness === undefined ? hitHeaders(meta, principal, nowMs) : objectHeaders(meta, true, principal, nowMs, object.freshness)
      send(outgoing, 200, withExtra(headers, extra), bytes, logger)
      return undefined
    }
    const headers = objectHeaders(meta, true, principal, nowMs, object.freshness)
    const range = resolved.ranges[0]!
    headers['Content-Range'] = contentRange(range, meta.size)
    headers['Content-Length'] = range.end - range.start + 1
    send(outgoing, 206, Object.assign(headers, extra), sliceBytes(bytes, range.start, range.end), logger)
    return undefined
  }
  return writeParts(outgoing, object, resolved, principal, nowMs, logger, extra)
}

async function writeParts(
  outgoing: ServerResponse,
  object: OpenObject,
  resolved: Exclude<ResolvedRange, { type: 'unsatisfiable' }>,
  principal: Principal,
  nowMs: number,
  logger: Logger,
  extra: OutgoingHttpHeaders | undefined,
): Promise<void> {
  const { meta } = object
  const ranges: ByteRange[] = resolved.type === 'partial' ? resolved.ranges : [{ start: 0, end: meta.size - 1 }]
  // Asked even of an object joined in flight: a paged one plans its reads from all the ranges.
  const cached = object.result !== 'hit' && meta.size > 0 && (await object.cached(ranges))
  const hit = object.result === 'hit' || (object.result !== 'inflight' && cached)
  // Built for this answer alone: the extra headers may go straight in.
  const headers = Object.assign(objectHeaders(meta, hit, principal, nowMs, object.freshness), extra)

  if (resolved.type === 'full') {
    // An empty object has no range to read: send headers and no body.
    const body = meta.size === 0 ? Buffer.alloc(0) : await object.read()
    return send(outgoing, 200, headers, body, logger)
  }
  if (resolved.ranges.length === 1) {
    const range = resolved.ranges[0]!
    headers['Content-Range'] = contentRange(range, meta.size)
    headers['Content-Length'] = range.end - range.start + 1
    return send(outgoing, 206, headers, await object.read(range), logger)
  }
  const plan = multipartParts(resolved.ranges, meta.size, meta.contentType, multipartBoundary())
  headers['Content-Type'] = plan.contentType
  headers['Content-Length'] = plan.contentLength
  // The first part is opened before the headers go out, so a failure there is still a 5xx.
  const first = await object.read(plan.parts[0]!.range)
  async function* multipart(): AsyncGenerator<Uint8Array> {
    for (const [index, part] of plan.parts.entries()) {
      yield part.header
      const body = index === 0 ? first : await object.read(part.range)
      if (isBytes(body)) yield* chunksOf(body)
      else for await (const chunk of body) yield chunk as Buffer
    }
    yield plan.trailer
  }
  const body = Readable.from(multipart(), { objectMode: false })
  // The first part was opened before the generator started: if the generator never reaches
  // it (the client left first), it must still be released (a file descriptor, a connection).
  body.once('close', () => {
    if (!isBytes(first) && !first.destroyed) first.destroy()
  })
  return send(outgoing, 206, headers, body, logger)
}

const isBytes = (body: Bytes | Readable): body is Bytes => Buffer.isBuffer(body) || Array.isArray(body)

function send(outgoing: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Bytes | Readable, logger: Logger): void {
  outgoing.writeHead(status, headers)
  if (Buffer.isBuffer(body)) {
    outgoing.end(body)
    return
  }
  if (isBytes(body)) {
    // Corked: the chunks go out in one writev, not one write each.
    outgoing.cork()
    for (const chunk of body) outgoing.write(chunk)
    outgoing.end()
    return
  }
  // A client that goes away ends only its own stream (a shared fill carries on).
  // pipe() with both ends watched rather than pipeline(): pipeline aborts an AbortController
  // of its own when done, and that DOMException (with its stack) cost 1.3% of a disk hit.
  if (outgoing.destroyed) {
    // The client left while the body was being opened: 'close' has already fired.
    body.destroy()
    return
  }
  if (body.destroyed) {
    // The body failed (or was cut) before anyone read it: its 'close' has already fired.
    logger.debug('response body ended before it was sent', { err: body.errored })
    outgoing.destroy()
    return
  }
  body.once('error', (error) => {
    logger.debug('response stream ended early', { err: error })
    outgoing.destroy(error)
  })
  outgoing.once('close', () => {
    if (!body.destroyed) body.destroy()
  })
  // A body that closes without ending (or failing) must not leave the response open.
  body.once('close', () => {
    if (!body.readableEnded) outgoing.destroy()
  })
  body.pipe(outgoing)
}
