/**
 * Version 2 links: a scoped payload next to Cachegate's version 1. Cachegate refuses any
 * `v` but 1, so an older verifier never accepts a v2 link while silently dropping its scope.
 * Strict on both sides: unknown fields and wrong types are refused (fail closed).
 *
 * The parse (once per distinct `sig`, cached with the verified signature) turns the payload
 * into a `ScopedLink`: methods expanded, the `ip` range and the Content-Disposition value
 * computed. `checkScope` then runs on every request: clock, method, bucket, path, address.
 */
import { BlockList, isIP } from 'node:net'
import contentDisposition from 'content-disposition'
import { isValidContentType } from '../content-type.ts'
import { AuthError, ForbiddenError } from '../errors.ts'
import { parseTrustedProxies } from '../http/client-address.ts'
import type { SignableMethod } from './presign.ts'

/** The v2 wire format (field table in README "Presigned links"). */
export interface PresignPayloadV2 {
  v: 2
  exp: number
  nbf?: number
  m: SignableMethod | SignableMethod[]
  b: string
  p?: string
  pp?: string
  kid?: string
  ip?: string
  ms?: number
  ct?: string
  fn?: string
  disp?: 'attachment' | 'inline'
}

/** A verified v2 payload, parsed once: what the verified-sig cache keeps. */
export interface ScopedLink {
  readonly v: 2
  readonly payload: PresignPayloadV2
  /** Allowed methods, HEAD added when GET is there. */
  readonly methods: ReadonlySet<string>
  readonly ipList?: BlockList
  /** The `Content-Disposition` value for GET and HEAD answers (`fn`/`disp`). */
  readonly disposition?: string
}

const METHODS: readonly string[] = ['GET', 'HEAD', 'PUT']
const FIELDS = new Set(['v', 'exp', 'nbf', 'm', 'b', 'p', 'pp', 'kid', 'ip', 'ms', 'ct', 'fn', 'disp'])

const malformed = (detail: string) => new AuthError('malformed payload', detail, `malformed payload: ${detail}`)
const isInteger = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value)
const isText = (value: unknown): value is string => typeof value === 'string' && value.length > 0

/**
 * A name a browser can save under as is: well-formed Unicode (a lone surrogate has no UTF-8
 * form for `filename*`), no control characters, no path separators, not `.` or `..`.
 */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

function isFileName(value: unknown): value is string {
  return isText(value) && !LONE_SURROGATE.test(value) && !/[\u0000-\u001f\u007f/\\]/.test(value) && value !== '.' && value !== '..'
}

/**
 * Checks every field of a decoded (and already verified) v2 payload. Throws `AuthError`
 * (`malformed payload`, with the field at fault) for anything the table does not allow.
 */
export function parsePayloadV2(value: Record<string, unknown>): ScopedLink {
  for (const field of Object.keys(value)) if (!FIELDS.has(field)) throw malformed(`unknown field "${field.slice(0, 32)}"`)
  const p = value as Partial<Record<keyof PresignPayloadV2, unknown>>
  if (!isInteger(p.exp)) throw malformed('exp is not an integer')
  if (p.nbf !== undefined && !isInteger(p.nbf)) throw malformed('nbf is not an integer')
  if (p.nbf !== undefined && (p.nbf as number) >= p.exp) throw malformed('nbf is not before exp')
  const m = typeof p.m === 'string' ? [p.m] : p.m
  if (!Array.isArray(m) || m.length === 0 || !m.every((x) => typeof x === 'string' && METHODS.includes(x))) throw malformed('m must be GET, HEAD, PUT or a list of them')
  if (!isText(p.b)) throw malformed('b is not a bucket id')
  if ((p.p === undefined) === (p.pp === undefined)) throw malformed('exactly one of p and pp is required')
  if (p.p !== undefined && typeof p.p !== 'string') throw malformed('p is not a string')
  if (p.pp !== undefined && (!isText(p.pp) || !p.pp.endsWith('/'))) throw malformed('pp must be a non-empty prefix ending with "/"')
  if (p.kid !== undefined && !isText(p.kid)) throw malformed('kid is not a key id')
  let ipList: BlockList | undefined
  if (p.ip !== undefined) {
    const parsed = typeof p.ip === 'string' ? parseTrustedProxies([p.ip]) : undefined
    if (!parsed || 'error' in parsed) throw malformed('ip is not an address or CIDR')
    ipList = parsed.list
  }
  const methods = new Set<string>(m as string[])
  if (methods.has('GET')) methods.add('HEAD')
  if (p.ms !== undefined && (!isInteger(p.ms) || p.ms < 0)) throw malformed('ms is not a byte count')
  if (p.ct !== undefined && !(typeof p.ct === 'string' && isValidContentType(p.ct))) throw malformed('ct is not a content type')
  if ((p.ms !== undefined || p.ct !== undefined) && !methods.has('PUT')) throw malformed('ms and ct are for PUT links only')
  if (p.fn !== undefined && !isFileName(p.fn)) throw malformed('fn is not a file name')
  if (p.disp !== undefined && p.disp !== 'attachment' && p.disp !== 'inline') throw malformed('disp must be "attachment" or "inline"')
  if ((p.fn !== undefined || p.disp !== undefined) && !methods.has('HEAD')) throw malformed('fn and disp are for GET links only')
  const payload = value as unknown as PresignPayloadV2
  return { v: 2, payload, methods, ipList, disposition: dispositionOf(payload) }
}

/**
 * RFC 6266: an ASCII `filename` for every client, plus an RFC 8187 `filename*` (UTF-8) when
 * the name is not plain ASCII. Latin-1 letters would be legal in `filename`, but clients
 * disagree on how to decode them; accents are dropped from the ASCII fallback instead.
 */
function dispositionOf(payload: PresignPayloadV2): string | undefined {
  if (payload.fn === undefined) return payload.disp
  const ascii = payload.fn.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').replace(/[^\x20-\x7e]/g, '?')
  return contentDisposition(payload.fn, { type: payload.disp ?? 'attachment', fallback: ascii })
}

export interface ScopedRequest {
  method: string
  bucket: string
  /** The decoded object key. */
  path: string
  /** The client's address (peer, or forwarded behind `trust_proxy`), asked only for an `ip` link. */
  client?: () => string
}

/**
 * The per-request half: clock (401, the credential is not valid now), then scope (403, the
 * link is valid but not for this request). Messages name the link's own fields only.
 */
export function checkScope(link: ScopedLink, request: ScopedRequest, nowMs: number): void {
  const { payload } = link
  if (payload.exp * 1000 <= nowMs) throw new AuthError('expired', `expired at ${new Date(payload.exp * 1000).toISOString()}`)
  if (payload.nbf !== undefined && nowMs < payload.nbf * 1000) {
    const at = new Date(payload.nbf * 1000).toISOString()
    throw new AuthError('not yet valid', `valid from ${at}`, `link not valid before ${at}`)
  }
  if (!link.methods.has(request.method)) throw new ForbiddenError('method', `link does not allow ${request.method}`)
  if (payload.b !== request.bucket) throw new ForbiddenError('bucket', `link is for bucket ${payload.b} only`)
  if (payload.p !== undefined ? payload.p !== request.path : !request.path.startsWith(payload.pp!)) {
    throw new ForbiddenError('path', payload.p !== undefined ? 'link is for another path' : `link is for prefix ${payload.pp} only`)
  }
  if (link.ipList) {
    const client = request.client?.() ?? ''
    const family = isIP(client)
    if (family === 0 || !link.ipList.check(client, family === 4 ? 'ipv4' : 'ipv6')) throw new ForbiddenError('ip', `link is for client address ${payload.ip} only`)
  }
}
