import { AuthError } from '../errors.ts'
import { decodeBase64Url, encodeBase64Url, sign } from './keys.ts'

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
  /** The object key, decoded (`photos/a b.jpg`). */
  path: string
  method?: SignableMethod
  /** Seconds from now; default 3600. */
  expiresIn?: number
  /** base64url Ed25519 private key (the 32-byte seed), as `keygen` writes it. */
  privateKey: string
  /** Current time in ms (injectable for tests). */
  now?: number
}

/** Signs a payload and returns the `sig` query value: `<payload>.<signature>`. */
export function signPayload(payload: PresignPayload, privateKey: string): string {
  const secret = decodeBase64Url(privateKey)
  if (secret?.length !== 32) throw new TypeError('privateKey must be 32 bytes of base64url')
  // Field order as Cachegate writes it; verification works on raw bytes, so order is free.
  const json = encoder.encode(JSON.stringify({ v: payload.v, exp: payload.exp, m: payload.m, b: payload.b, p: payload.p }))
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
  const method = options.method ?? 'GET'
  if (!SIGNABLE_METHODS.includes(method)) throw new TypeError(`method must be one of ${SIGNABLE_METHODS.join(', ')}`)
  const expiresIn = options.expiresIn ?? 3600
  if (!Number.isInteger(expiresIn) || expiresIn <= 0) throw new TypeError('expiresIn must be a positive whole number of seconds')
  const exp = Math.floor((options.now ?? Date.now()) / 1000) + expiresIn
  const sig = signPayload({ v: 1, exp, m: method, b: options.bucket, p: options.path }, options.privateKey)
  const base = options.baseUrl.replace(/\/+$/, '')
  return `${base}/${encodeURIComponent(options.bucket)}/${encodeKeyPath(options.path)}?sig=${sig}`
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

/** The signature part alone: what may be cached per distinct `sig` once it succeeded. */
export function verifySignature(sig: string, verifiers: readonly SignatureCheck[]): PresignPayload {
  if (sig.length > MAX_SIG_LENGTH) throw new AuthError('malformed signature', 'sig too long')
  const dot = sig.indexOf('.')
  if (dot <= 0 || dot !== sig.lastIndexOf('.') || dot === sig.length - 1) throw new AuthError('malformed signature', 'sig is not <payload>.<signature>')
  const payloadBytes = decodeBase64Url(sig.slice(0, dot))
  const signature = decodeBase64Url(sig.slice(dot + 1))
  if (!payloadBytes || !signature) throw new AuthError('malformed signature', 'sig is not base64url')
  if (signature.length !== 64) throw new AuthError('malformed signature', 'signature is not 64 bytes')
  // Verify before parsing: untrusted JSON is never interpreted unless it is signed.
  if (!verifiers.some((check) => check(signature, payloadBytes))) throw new AuthError('bad signature')
  return parsePayload(payloadBytes)
}

/** Expiry, method, bucket and path: checked on every request, cached signature or not. */
export function checkPayload(payload: PresignPayload, request: PresignedRequest, nowMs: number): PresignPayload {
  if (payload.exp * 1000 <= nowMs) throw new AuthError('expired', `expired at ${new Date(payload.exp * 1000).toISOString()}`)
  if (payload.m !== request.method) throw new AuthError('method mismatch', `signed for ${payload.m}, request is ${request.method}`)
  if (payload.b !== request.bucket) throw new AuthError('bucket mismatch')
  if (payload.p !== request.path) throw new AuthError('path mismatch')
  return payload
}

function parsePayload(bytes: Uint8Array): PresignPayload {
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'))
  } catch {
    throw new AuthError('malformed payload', 'payload is not JSON')
  }
  const p = value as Partial<PresignPayload> | null
  if (typeof p !== 'object' || p === null) throw new AuthError('malformed payload', 'payload is not an object')
  if (p.v !== 1) throw new AuthError('unsupported version', `payload version ${String(p.v)}`)
  if (typeof p.exp !== 'number' || !Number.isSafeInteger(p.exp)) throw new AuthError('malformed payload', 'exp is not an integer')
  if (typeof p.m !== 'string' || typeof p.b !== 'string' || typeof p.p !== 'string') throw new AuthError('malformed payload', 'm, b or p missing')
  return p as PresignPayload
}
