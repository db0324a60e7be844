import { AuthError } from '../errors.ts'
import { decodeBase64Url, encodeBase64Url, sign } from './keys.ts'
import { type PresignPayloadV2, type ScopedLink, parsePayloadV2 } from './payload-v2.ts'

export const SIGNABLE_METHODS = ['GET', 'HEAD', 'PUT'] as const
export type SignableMethod = (typeof SIGNABLE_METHODS)[number]

/** Cachegate's wire format: JSON, Ed25519 over the raw payload bytes, both base64url. */
export interface PresignPayload {
  v: 1
  exp: number
  m: SignableMethod
  b: string
  p: string
}

/** Either version: v1 (Cachegate's) or v2 (scoped, ours). */
export type LinkPayload = PresignPayload | PresignPayloadV2

/** Longest `sig` we will look at: bounds the work an unauthenticated request can cause. */
const MAX_SIG_LENGTH = 4096
const encoder = new TextEncoder()

/** Encodes each segment of a key for a URL path, keeping the slashes. */
export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/')
}

export interface PresignOptions {
  /** Where the gateway is reachable, e.g. `https://cdn.example.com`. */
  baseUrl: string
  bucket: string
  /**
   * The object key, decoded (`photos/a b.jpg`): the link's exact path, or with `prefix`
   * only the path the printed URL names (it must start with the prefix; default: the prefix).
   */
  path?: string
  /** One method, or several (a version 2 link); GET also allows HEAD in version 2. */
  method?: SignableMethod | SignableMethod[]
  /** Seconds from now; default 3600. */
  expiresIn?: number
  /** base64url Ed25519 private key (the 32-byte seed), as `keygen` writes it. */
  privateKey: string
  /** Current time in ms (injectable for tests). */
  now?: number
  // Any of the following makes a version 2 link (README "Presigned links"): Cachegate and
  // older cachegate versions refuse it rather than ignore the scope.
  /** `pp`: any key starting with this prefix (ends with `/`), instead of one path. */
  prefix?: string
  /** `nbf`: not valid before this many seconds from now (may be negative). */
  notBefore?: number
  /** `kid`: the id of the verifying key in `auth.keys`. */
  keyId?: string
  /** `ip`: the client address or CIDR the link is bound to. */
  ip?: string
  /** `ms`: PUT only, the largest body accepted. */
  maxSize?: number
  /** `ct`: PUT only, the Content-Type the upload must declare. */
  contentType?: string
  /** `fn`: GET only, the download's file name (Content-Disposition). */
  filename?: string
  /** `disp`: `inline` or `attachment` (the default when `filename` is set). */
  disposition?: 'attachment' | 'inline'
  /** Force a version 2 link even when no v2 field is set. */
  version?: 1 | 2
}

/** Signs a payload and returns the `sig` query value: `<payload>.<signature>`. */
export function signPayload(payload: LinkPayload, privateKey: string): string {
  const secret = decodeBase64Url(privateKey)
  if (secret?.length !== 32) throw new TypeError('privateKey must be 32 bytes of base64url')
  // Field order as Cachegate writes it; verification works on raw bytes, so order is free.
  // Fields left undefined are left out by JSON.stringify.
  const fields =
    payload.v === 1
      ? { v: payload.v, exp: payload.exp, m: payload.m, b: payload.b, p: payload.p }
      : { v: payload.v, exp: payload.exp, nbf: payload.nbf, m: payload.m, b: payload.b, p: payload.p, pp: payload.pp, kid: payload.kid, ip: payload.ip, ms: payload.ms, ct: payload.ct, fn: payload.fn, disp: payload.disp }
  const json = encoder.encode(JSON.stringify(fields))
  return `${encodeBase64Url(json)}.${encodeBase64Url(sign(json, secret))}`
}

/**
 * Mints a presigned URL, the same as `cachegate sign` prints.
 *
 * @example
 * import { presign } from 'cachegate'
 * const url = presign({ baseUrl: 'https://cdn.example.com', bucket: 'media', path: 'a/b.jpg', privateKey })
 */
export function presign(options: PresignOptions): string {
  const payload = presignPayload(options)
  const sig = signPayload(payload, options.privateKey)
  const base = options.baseUrl.replace(/\/+$/, '')
  const path = options.path ?? options.prefix ?? ''
  return `${base}/${encodeURIComponent(options.bucket)}/${encodeKeyPath(path)}?sig=${sig}`
}

/** The payload `presign` signs: version 1 unless a version 2 field (or `version: 2`) is asked for. */
export function presignPayload(options: PresignOptions): LinkPayload {
  const method = options.method ?? 'GET'
  const methods = Array.isArray(method) ? method : [method]
  if (methods.length === 0 || !methods.every((m) => SIGNABLE_METHODS.includes(m))) throw new TypeError(`method must be one of ${SIGNABLE_METHODS.join(', ')}`)
  const expiresIn = options.expiresIn ?? 3600
  if (!Number.isInteger(expiresIn) || expiresIn <= 0) throw new TypeError('expiresIn must be a positive whole number of seconds')
  const nowSeconds = Math.floor((options.now ?? Date.now()) / 1000)
  const exp = nowSeconds + expiresIn
  const { prefix, path, notBefore, keyId, ip, maxSize, contentType, filename, disposition } = options
  const v2 = options.version === 2 || methods.length > 1 || [prefix, notBefore, keyId, ip, maxSize, contentType, filename, disposition].some((x) => x !== undefined)
  if (!v2) {
    if (path === undefined) throw new TypeError('path is required')
    return { v: 1, exp, m: methods[0]!, b: options.bucket, p: path }
  }
  if (prefix !== undefined && path !== undefined && !path.startsWith(prefix)) throw new TypeError('path must start with prefix')
  if (prefix === undefined && path === undefined) throw new TypeError('path or prefix is required')
  if (notBefore !== undefined && !Number.isInteger(notBefore)) throw new TypeError('notBefore must be a whole number of seconds')
  const payload: PresignPayloadV2 = {
    v: 2,
    exp,
    nbf: notBefore === undefined ? undefined : nowSeconds + notBefore,
    m: methods.length === 1 ? methods[0]! : methods,
    b: options.bucket,
    ...(prefix === undefined ? { p: path } : { pp: prefix }),
    kid: keyId,
    ip,
    ms: maxSize,
    ct: contentType,
    fn: filename,
    disp: disposition,
  }
  // What the gateway would refuse is refused here, with the same words.
  try {
    parsePayloadV2(JSON.parse(JSON.stringify(payload)) as Record<string, unknown>)
  } catch (error) {
    throw new TypeError(error instanceof AuthError ? error.shown : String(error))
  }
  return payload
}

export interface PresignedRequest {
  method: string
  bucket: string
  /** The decoded object key of the request. */
  path: string
}

export type SignatureCheck = (signature: Uint8Array, message: Uint8Array) => boolean

/**
 * Verifies a `sig` value against a request. Throws `AuthError` with a short reason
 * (`malformed signature`, `bad signature`, `expired`, `method mismatch`...).
 * `verifiers`: one per accepted public key (see `createVerifier`).
 */
export function verifyPresigned(sig: string, request: PresignedRequest, verifiers: readonly SignatureCheck[], nowMs: number): PresignPayload {
  return checkPayload(verifySignature(sig, verifiers), request, nowMs)
}

/** `<payload>.<signature>`, both base64url: the bytes, or an AuthError (`malformed signature`). */
function openSig(sig: string): { payloadBytes: Uint8Array; signature: Uint8Array } {
  if (sig.length > MAX_SIG_LENGTH) throw new AuthError('malformed signature', 'sig too long')
  const dot = sig.indexOf('.')
  if (dot <= 0 || dot !== sig.lastIndexOf('.') || dot === sig.length - 1) throw new AuthError('malformed signature', 'sig is not <payload>.<signature>')
  const payloadBytes = decodeBase64Url(sig.slice(0, dot))
  const signature = decodeBase64Url(sig.slice(dot + 1))
  if (!payloadBytes || !signature) throw new AuthError('malformed signature', 'sig is not base64url')
  if (signature.length !== 64) throw new AuthError('malformed signature', 'signature is not 64 bytes')
  return { payloadBytes, signature }
}

/**
 * The signature part alone, Cachegate's verifier: version 1 only. What may be cached per
 * distinct `sig` once it succeeded. (`verifyLink` also takes version 2 and key ids.)
 */
export function verifySignature(sig: string, verifiers: readonly SignatureCheck[]): PresignPayload {
  const { payloadBytes, signature } = openSig(sig)
  // Verify before parsing: untrusted JSON is never interpreted unless it is signed.
  if (!verifiers.some((check) => check(signature, payloadBytes))) throw new AuthError('bad signature')
  return v1Fields(parseJson(payloadBytes))
}

/** The accepted public keys: all of them in order (a link without `kid`), and those with an id. */
export interface KeyRing {
  all: readonly SignatureCheck[]
  byId: ReadonlyMap<string, SignatureCheck>
}

/** A verified link: Cachegate's v1 payload as is, or a parsed v2 one. */
export type VerifiedLink = PresignPayload | ScopedLink

/**
 * Verifies a `sig` of either version. A v2 payload naming a `kid` is checked by that key
 * only (one verification, not one per key); anything else by each key in order. Only `kid`
 * is read before the signature is checked; every other field is interpreted once it is
 * signed, and unsigned junk is always a `bad signature`, whatever it holds.
 */
export function verifyLink(sig: string, keys: KeyRing): VerifiedLink {
  const { payloadBytes, signature } = openSig(sig)
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(payloadBytes).toString('utf8'))
  } catch {
    value = undefined
  }
  const claimed = value as { v?: unknown; kid?: unknown } | null | undefined
  const kid = claimed?.v === 2 && typeof claimed.kid === 'string' && claimed.kid !== '' ? claimed.kid : undefined
  if (kid !== undefined) {
    const check = keys.byId.get(kid)
    if (!check || !check(signature, payloadBytes)) throw new AuthError('bad signature', check ? `not signed by key ${kid}` : `no key with id ${kid}`, check ? undefined : 'bad signature: unknown key id')
  } else if (!keys.all.some((check) => check(signature, payloadBytes))) {
    throw new AuthError('bad signature')
  }
  if (value === undefined) throw new AuthError('malformed payload', 'payload is not JSON')
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AuthError('malformed payload', 'payload is not an object')
  if ((value as { v?: unknown }).v === 2) return parsePayloadV2(value as Record<string, unknown>)
  return v1Fields(value)
}

/** Expiry, method, bucket and path: checked on every request, cached signature or not. */
export function checkPayload(payload: PresignPayload, request: PresignedRequest, nowMs: number): PresignPayload {
  if (payload.exp * 1000 <= nowMs) throw new AuthError('expired', `expired at ${new Date(payload.exp * 1000).toISOString()}`)
  if (payload.m !== request.method) throw new AuthError('method mismatch', `signed for ${payload.m}, request is ${request.method}`)
  if (payload.b !== request.bucket) throw new AuthError('bucket mismatch')
  if (payload.p !== request.path) throw new AuthError('path mismatch')
  return payload
}

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    throw new AuthError('malformed payload', 'payload is not JSON')
  }
}

/** Cachegate's checks on a v1 payload (unknown fields ignored, as Cachegate's serde does). */
function v1Fields(value: unknown): PresignPayload {
  const p = value as Partial<PresignPayload> | null
  if (typeof p !== 'object' || p === null) throw new AuthError('malformed payload', 'payload is not an object')
  if (p.v !== 1) throw new AuthError('unsupported version', `payload version ${String(p.v)}`)
  if (typeof p.exp !== 'number' || !Number.isSafeInteger(p.exp)) throw new AuthError('malformed payload', 'exp is not an integer')
  if (typeof p.m !== 'string' || typeof p.b !== 'string' || typeof p.p !== 'string') throw new AuthError('malformed payload', 'm, b or p missing')
  return p as PresignPayload
}
