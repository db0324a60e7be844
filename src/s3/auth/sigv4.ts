/**
 * AWS Signature Version 4 on incoming requests, header (`Authorization: AWS4-HMAC-SHA256 …`)
 * or presigned query (`X-Amz-Algorithm=…&X-Amz-Signature=…`). The signature is recomputed with
 * `@smithy/signature-v4` (the signer the AWS SDKs use) from the request as received, and
 * compared in constant time. AWS docs: "Authenticating Requests (AWS Signature Version 4)".
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { SignatureV4 } from '@smithy/signature-v4'
import { LRUCache } from 'lru-cache'
import { S3Error } from '../errors.ts'
import { headerOf } from '../headers.ts'
import { type QueryBag, single } from '../query.ts'
import type { S3Credential } from './scope.ts'

export const ALGORITHM = 'AWS4-HMAC-SHA256'
/** S3 refuses requests whose time is further than this from its own clock. */
export const MAX_SKEW_MS = 15 * 60 * 1000
/** A presigned URL lives at most 7 days (`X-Amz-Expires` ≤ 604800). */
export const MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
/** Requests whose signature verified, so a repeated one (same target, headers and signature) skips the HMACs. */
const VERIFIED_REQUESTS = 10_000
/** Longer cache keys are verified every time: the bound is on entries, this keeps it on bytes too. */
const VERIFIED_KEY_MAX_LENGTH = 4096

/** A request whose signature holds. */
export interface VerifiedRequest {
  credential: S3Credential
  /** Hex signature of the request: the seed of an aws-chunked body's chunk signatures. */
  signature: string
  signingDate: Date
  /** `YYYYMMDDTHHMMSSZ` and `date/region/s3/aws4_request`, as signed. */
  longDate: string
  scope: string
  /** `x-amz-content-sha256` (a presigned URL: `UNSIGNED-PAYLOAD` unless the header says otherwise). */
  payload: string | undefined
  /** A presigned URL's expiry, in unix seconds. */
  expiresAt?: number
  /** HMAC of `text` with this request's signing key (chunk and trailer signatures). */
  signString(text: string): Promise<string>
}

/** node:crypto behind the hash interface the smithy signer takes (a key makes it an HMAC). */
class NodeSha256 {
  readonly #hash
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#hash = secret === undefined ? createHash('sha256') : createHmac('sha256', typeof secret === 'string' ? secret : Buffer.from(secret as ArrayBuffer))
  }
  update(data: Uint8Array | string): void {
    this.#hash.update(data)
  }
  async digest(): Promise<Uint8Array> {
    return this.#hash.digest()
  }
  reset(): void {}
}

export const sha256Hex = (data: Buffer | string) => createHash('sha256').update(data).digest('hex')

interface ParsedAuth {
  accessKeyId: string
  shortDate: string
  region: string
  signedHeaders: string[]
  signature: string
  longDate: string
  presigned?: { expires: number }
}

const LONG_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/

function parseLongDate(value: string | undefined, fail: (why: string) => S3Error): Date {
  const m = value === undefined ? null : LONG_DATE.exec(value)
  if (!m) throw fail('X-Amz-Date must be YYYYMMDDTHHMMSSZ')
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))
  if (!Number.isFinite(ms)) throw fail('X-Amz-Date is not a date')
  return new Date(ms)
}

/** `AKID/20260101/us-east-1/s3/aws4_request` → its parts, checked against the configured region. */
function parseCredential(value: string | undefined, region: string, fail: (why: string) => S3Error): { accessKeyId: string; shortDate: string; region: string } {
  const parts = value?.split('/')
  if (!parts || parts.length !== 5 || !parts[0]) throw fail('Credential must be <access key id>/<date>/<region>/s3/aws4_request')
  const [accessKeyId, shortDate, scopeRegion, service, terminator] = parts as [string, string, string, string, string]
  if (!/^\d{8}$/.test(shortDate)) throw fail('the credential scope date must be YYYYMMDD')
  if (service !== 's3' || terminator !== 'aws4_request') throw fail('the credential scope must end in /s3/aws4_request')
  if (scopeRegion !== region) throw fail(`the region '${scopeRegion}' is wrong; expecting '${region}'`)
  return { accessKeyId, shortDate, region: scopeRegion }
}

function parseSignedHeaders(value: string | undefined, fail: (why: string) => S3Error): string[] {
  const names = value?.split(';') ?? []
  if (names.length === 0 || names.some((n) => !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(n))) throw fail('SignedHeaders must be lower-case header names separated by ";"')
  if (!names.includes('host')) throw fail('SignedHeaders must include host')
  return names
}

function parseHeaderAuth(authorization: string, incoming: IncomingMessage, region: string): ParsedAuth {
  const fail = (why: string) => new S3Error('AuthorizationHeaderMalformed', `the authorization header is malformed: ${why}`)
  const fields = new Map<string, string>()
  for (const part of authorization.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=')
    if (eq === -1) throw fail('expected Credential=…, SignedHeaders=…, Signature=…')
    const name = part.slice(0, eq).trim()
    if (fields.has(name)) throw fail(`${name} given more than once`)
    fields.set(name, part.slice(eq + 1).trim())
  }
  const credential = parseCredential(fields.get('Credential'), region, fail)
  const signedHeaders = parseSignedHeaders(fields.get('SignedHeaders'), fail)
  const signature = fields.get('Signature')
  if (!signature || !/^[0-9a-f]{64}$/.test(signature)) throw fail('Signature must be 64 lower-case hex digits')
  const longDate = headerOf(incoming, 'x-amz-date')
  if (longDate === undefined || !signedHeaders.includes('x-amz-date')) throw fail('x-amz-date must be sent and signed')
  if (!longDate.startsWith(credential.shortDate)) throw fail('the credential scope date is not the date of X-Amz-Date')
  return { ...credential, signedHeaders, signature, longDate }
}

function parseQueryAuth(params: QueryBag, region: string): ParsedAuth {
  const fail = (why: string) => new S3Error('AuthorizationQueryParametersError', `the presigned URL is malformed: ${why}`)
  if (single(params, 'X-Amz-Algorithm') !== ALGORITHM) throw fail(`X-Amz-Algorithm must be ${ALGORITHM}`)
  if (single(params, 'X-Amz-Security-Token') !== undefined) throw fail('session tokens are not accepted')
  const credential = parseCredential(single(params, 'X-Amz-Credential'), region, fail)
  const signedHeaders = parseSignedHeaders(single(params, 'X-Amz-SignedHeaders'), fail)
  const signature = single(params, 'X-Amz-Signature')
  if (!signature || !/^[0-9a-f]{64}$/.test(signature)) throw fail('X-Amz-Signature must be 64 lower-case hex digits')
  const longDate = single(params, 'X-Amz-Date')
  if (!longDate?.startsWith(credential.shortDate)) throw fail('the credential scope date is not the date of X-Amz-Date')
  const expiresText = single(params, 'X-Amz-Expires')
  const expires = Number(expiresText)
  if (!expiresText || !/^\d{1,7}$/.test(expiresText) || expires < 1 || expires > MAX_PRESIGNED_SECONDS) {
    throw fail(`X-Amz-Expires must be a number of seconds from 1 to ${MAX_PRESIGNED_SECONDS} (7 days)`)
  }
  return { ...credential, signedHeaders, signature, longDate, presigned: { expires } }
}

/** The signed headers as received: repeated fields joined with `,` (SigV4 canonical form), or undefined when one is missing. */
function signedHeaderValues(incoming: IncomingMessage, names: readonly string[]): Record<string, string> | undefined {
  const values: Record<string, string> = {}
  const raw = incoming.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (!names.includes(name)) continue
    const value = raw[i + 1]!
    values[name] = values[name] === undefined ? value : `${values[name]},${value}`
  }
  for (const name of names) if (values[name] === undefined) return undefined
  return values
}

const PRESIGN_PARAMS = new Set(['X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders', 'X-Amz-Signature'])

function equalHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))
}

export interface SigV4Options {
  credentials: readonly S3Credential[]
  region: string
  now: () => number
}

/**
 * @example
 * const verifier = createSigV4Verifier({ credentials, region: 'us-east-1', now: Date.now })
 * const verified = await verifier.verify(incoming, path, parseQuery(query))
 */
export function createSigV4Verifier(options: SigV4Options) {
  const { region, now } = options
  const signers = new Map<string, { credential: S3Credential; signer: SignatureV4 }>()
  for (const credential of options.credentials) {
    const signer = new SignatureV4({
      service: 's3',
      region,
      credentials: { accessKeyId: credential.accessKeyId, secretAccessKey: credential.secretAccessKey },
      sha256: NodeSha256,
      // S3 signs the path as sent, not double-encoded (unlike every other AWS service).
      uriEscapePath: false,
      applyChecksum: false,
    })
    signers.set(credential.accessKeyId, { credential, signer })
  }
  const verified = new LRUCache<string, Omit<VerifiedRequest, 'payload'>>({ max: VERIFIED_REQUESTS })

  function checkTime(parsed: ParsedAuth, signingDate: Date): number | undefined {
    const nowMs = now()
    if (!parsed.presigned) {
      if (Math.abs(nowMs - signingDate.getTime()) > MAX_SKEW_MS) {
        throw new S3Error('RequestTimeTooSkewed', 'the difference between the request time and the current time is too large (15 minutes at most)')
      }
      return undefined
    }
    if (signingDate.getTime() - nowMs > MAX_SKEW_MS) throw new S3Error('AccessDenied', 'the presigned URL is not valid yet (X-Amz-Date is in the future)')
    const expiresAt = signingDate.getTime() / 1000 + parsed.presigned.expires
    if (nowMs / 1000 > expiresAt) throw new S3Error('AccessDenied', 'request has expired')
    return expiresAt
  }

  async function verify(incoming: IncomingMessage, rawUrl: string, path: string, params: QueryBag): Promise<VerifiedRequest> {
    const authorization = incoming.headers.authorization
    const fromHeader = authorization !== undefined && authorization.startsWith(`${ALGORITHM} `)
    if (fromHeader && single(params, 'X-Amz-Algorithm') !== undefined) throw new S3Error('InvalidArgument', 'only one auth mechanism allowed: an Authorization header or a presigned query, not both')
    const parsed = fromHeader ? parseHeaderAuth(authorization, incoming, region) : parseQueryAuth(params, region)
    const signingDate = parseLongDate(parsed.longDate, (why) => new S3Error(fromHeader ? 'AuthorizationHeaderMalformed' : 'AuthorizationQueryParametersError', why))
    const expiresAt = checkTime(parsed, signingDate)
    const found = signers.get(parsed.accessKeyId)
    if (!found) throw new S3Error('InvalidAccessKeyId', 'the AWS access key id you provided does not exist in our records')
    const headers = signedHeaderValues(incoming, parsed.signedHeaders)
    if (!headers) throw new S3Error('SignatureDoesNotMatch', 'a header named in SignedHeaders is missing from the request')
    const payloadHeader = headerOf(incoming, 'x-amz-content-sha256')
    const payload = fromHeader ? payloadHeader : (payloadHeader ?? 'UNSIGNED-PAYLOAD')
    if (fromHeader && payload === undefined) throw new S3Error('InvalidRequest', 'missing required header for this request: x-amz-content-sha256')

    const cacheKey = `${incoming.method}\n${rawUrl}\n${authorization ?? ''}\n${payload}\n${JSON.stringify(headers)}`
    const known = cacheKey.length <= VERIFIED_KEY_MAX_LENGTH ? verified.get(cacheKey) : undefined
    if (known) return { ...known, expiresAt, payload }

    const { credential, signer } = found
    // Only what was signed goes in (the signer would canonicalise any header it is given),
    // and the payload hash as the client declared it.
    const request = {
      method: incoming.method ?? 'GET',
      protocol: 'http:',
      hostname: headers.host!,
      path,
      query: {} as QueryBag,
      headers: { ...headers, 'x-amz-content-sha256': payload! } as Record<string, string>,
    }
    const signOptions = {
      signingDate,
      signingRegion: parsed.region,
      signableHeaders: new Set(parsed.signedHeaders),
      unsignableHeaders: parsed.signedHeaders.includes('x-amz-content-sha256') ? undefined : new Set(['x-amz-content-sha256']),
    }
    let expected: string | undefined
    if (fromHeader) {
      request.query = params
      const signed = await signer.sign(request, signOptions)
      expected = /Signature=([0-9a-f]+)$/.exec(String(signed.headers.authorization))?.[1]
    } else {
      for (const [name, value] of Object.entries(params)) if (!PRESIGN_PARAMS.has(name)) request.query[name] = value
      const signed = await signer.presign(request, { ...signOptions, expiresIn: parsed.presigned!.expires, unhoistableHeaders: new Set(Object.keys(request.headers)) })
      expected = signed.query?.['X-Amz-Signature'] as string | undefined
    }
    if (expected === undefined || !equalHex(expected, parsed.signature)) {
      throw new S3Error('SignatureDoesNotMatch', 'the request signature we calculated does not match the signature you provided; check your key and signing method')
    }
    const scope = `${parsed.shortDate}/${parsed.region}/s3/aws4_request`
    const signString = (text: string) => signer.sign(text, { signingDate, signingRegion: parsed.region })
    const result = { credential, signature: parsed.signature, signingDate, longDate: parsed.longDate, scope, signString }
    if (cacheKey.length <= VERIFIED_KEY_MAX_LENGTH) verified.set(cacheKey, result)
    return { ...result, expiresAt, payload }
  }

  return { verify }
}

export type SigV4Verifier = ReturnType<typeof createSigV4Verifier>

/** One header prefix or one query key: how a request says it is SigV4-signed (the hot path's only cost when the S3 API is on). */
export function isSigV4Request(incoming: IncomingMessage, query: string): boolean {
  const authorization = incoming.headers.authorization
  if (authorization !== undefined) return authorization.startsWith(`${ALGORITHM} `)
  return query !== '' && query.includes('X-Amz-Algorithm=')
}
