/**
 * AWS Signature Version 4 on incoming requests, header (`Authorization: AWS4-HMAC-SHA256 …`)
 * or presigned query (`X-Amz-Algorithm=…&X-Amz-Signature=…`), checked synchronously (a memory
 * hit is answered with no promise). The query is canonicalised by `@smithy/signature-v4`'s
 * `getCanonicalQuery` (the signer the AWS SDKs use: its URI escaping is the error-prone part);
 * the rest of the canonical request is built here the way smithy's signer builds it (S3 signs
 * the path as sent; headers lower-cased, sorted, whitespace folded) and test/s3-sigv4-smithy.test.ts
 * checks the two agree on random requests. The signing key is derived once per (access key,
 * day) and kept (bounded) with its HMAC pads prepared (hmac.ts); the final HMAC is compared in
 * constant time (`equalHex`).
 * AWS docs: "Authenticating Requests (AWS Signature Version 4)".
 */
import { createHmac, hash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { getCanonicalQuery } from '@smithy/signature-v4'
import { S3Error } from '../errors.ts'
import { headerOf } from '../headers.ts'
import { type QueryBag, hasAny, single } from '../query.ts'
import { HmacSha256, equalHex } from './hmac.ts'
import { ALGORITHM, AuthorizationPrefixes, HEADER_PREFIX, MAX_PRESIGNED_SECONDS, MAX_SKEW_MS, type ParsedAuth, type SignedHeaderList, parseHeaderAuth, parseLongDate, parseQueryAuth } from './parse.ts'
import type { S3Credential } from './scope.ts'

export { ALGORITHM, MAX_PRESIGNED_SECONDS, MAX_SKEW_MS }

/** Signing keys kept (one per access key, day and region in use): cleared when full. */
const SIGNING_KEYS = 1000

/** A request whose signature holds. */
export interface VerifiedRequest {
  credential: S3Credential
  /** Hex signature of the request: the seed of an aws-chunked body's chunk signatures. */
  signature: string
  /** `YYYYMMDDTHHMMSSZ` and `date/region/s3/aws4_request`, as signed. */
  longDate: string
  scope: string
  /** `x-amz-content-sha256` (a presigned URL: `UNSIGNED-PAYLOAD` unless the header says otherwise). */
  payload: string | undefined
  /** A presigned URL's expiry, in unix seconds. */
  expiresAt?: number
  /** Hex HMAC of `text` with this request's signing key (chunk and trailer signatures). */
  signString(text: string): string
}

const hmac = (key: Buffer | string, text: string) => createHmac('sha256', key).update(text).digest()

/** `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")` (what smithy's `getSigningKey` computes, synchronously). */
export function deriveSigningKey(secretAccessKey: string, shortDate: string, region: string, service: string): Buffer {
  return hmac(hmac(hmac(hmac(`AWS4${secretAccessKey}`, shortDate), region), service), 'aws4_request')
}

/** One-shot (Node ≥ 21.7): cheaper than a Hash object for one buffer. */
export const sha256Hex = (data: Buffer | string) => hash('sha256', data, 'hex')

/** Line breaks, tabs, runs of spaces, a leading or trailing space: what SigV4 folds in a header value (a character loop: most values have none). */
export function needsFolding(value: string): boolean {
  const last = value.length - 1
  for (let i = 0; i <= last; i++) {
    const c = value.charCodeAt(i)
    if (c === 13 || c === 10 || c === 9) return true
    if (c === 32 && (i === 0 || i === last || value.charCodeAt(i + 1) === 32)) return true
  }
  return false
}
/** A header value as SigV4 canonicalises it (smithy: line breaks to spaces, runs of blanks to one space, trimmed by one). */
const foldValue = (value: string) => (needsFolding(value) ? value.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '') : value)

/**
 * The canonical headers block (`name:value\n` for each signed header, sorted) from the headers
 * as received, repeated fields joined with `,`; undefined when a signed header is missing.
 */
function canonicalHeaders(incoming: IncomingMessage, list: SignedHeaderList): string | undefined {
  const { sorted, positions } = list
  const values = new Array<string | undefined>(sorted.length)
  const raw = incoming.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const at = positions.get(raw[i]!.toLowerCase())
    if (at === undefined) continue
    const value = raw[i + 1]!
    const previous = values[at]
    values[at] = previous === undefined ? value : `${previous},${value}`
  }
  let block = ''
  for (let at = 0; at < sorted.length; at++) {
    const value = values[at]
    if (value === undefined) return undefined
    block += `${sorted[at]}:${foldValue(value)}\n`
  }
  return block
}

/**
 * The canonical request (AWS: "Create a canonical request"): method, the path as sent (S3 is
 * the one service whose path is not escaped again), the query by smithy's canonicaliser
 * (`X-Amz-Signature` left out), the headers, the signed-headers line, the payload hash.
 */
function canonicalRequest(method: string, path: string, params: QueryBag, headers: string, list: SignedHeaderList, payload: string): string {
  // smithy reads the request's query only.
  const query = hasAny(params) ? getCanonicalQuery({ query: params } as Parameters<typeof getCanonicalQuery>[0]) : ''
  return `${method}\n${path}\n${query}\n${headers}\n${list.line}\n${payload}`
}

/**
 * `x-amz-*` headers a presigned URL may carry unsigned: the payload hash (it goes into the
 * canonical request, so a changed one fails the signature) and flexible checksums (they can
 * only make an upload fail). Any other one would change what the request does.
 */
const isUnsignedAllowed = (name: string) => name === 'x-amz-content-sha256' || name.startsWith('x-amz-checksum-') || name === 'x-amz-sdk-checksum-algorithm'

/**
 * A presigned URL is handed to someone who does not hold the secret: every `x-amz-*` header
 * it is used with must have been signed (as S3 answers: "headers present in the request which
 * were not signed"). Otherwise the holder of a PUT URL adds `x-amz-copy-source` and the PUT
 * becomes a CopyObject that reads any key the signer's credential may read.
 */
function refuseUnsignedAmzHeaders(incoming: IncomingMessage, signed: ReadonlySet<string>): void {
  const raw = incoming.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (name.startsWith('x-amz-') && !signed.has(name) && !isUnsignedAllowed(name)) {
      throw new S3Error('AccessDenied', `there were headers present in the request which were not signed: ${name.slice(0, 64)}`)
    }
  }
}

const headerDateFailure = (why: string) => new S3Error('AuthorizationHeaderMalformed', why)
const queryDateFailure = (why: string) => new S3Error('AuthorizationQueryParametersError', why)

export interface SigV4Options {
  credentials: readonly S3Credential[]
  region: string
  now: () => number
  /** Presigned URLs whose expiry is further than this many seconds away are refused (`auth.max_link_lifetime`). */
  maxLinkLifetime?: number
}

/**
 * @example
 * const verifier = createSigV4Verifier({ credentials, region: 'us-east-1', now: Date.now })
 * const verified = verifier.verify(incoming, path, parseQuery(query))
 */
export function createSigV4Verifier(options: SigV4Options) {
  const { region, now, maxLinkLifetime } = options
  const credentials = new Map(options.credentials.map((credential) => [credential.accessKeyId, credential]))
  const signers = new Map<string, HmacSha256>()
  const prefixes = new AuthorizationPrefixes()

  /** The HMAC under the signing key of (key, day, region), derived on first use and then kept. */
  function signerOf(credential: S3Credential, shortDate: string): HmacSha256 {
    const id = `${credential.accessKeyId}/${shortDate}`
    const known = signers.get(id)
    if (known) return known
    const derived = new HmacSha256(deriveSigningKey(credential.secretAccessKey, shortDate, region, 's3'))
    if (signers.size >= SIGNING_KEYS) signers.clear()
    signers.set(id, derived)
    return derived
  }

  function checkTime(parsed: ParsedAuth, signedAt: number): number | undefined {
    const nowMs = now()
    if (!parsed.presigned) {
      if (Math.abs(nowMs - signedAt) > MAX_SKEW_MS) {
        throw new S3Error('RequestTimeTooSkewed', 'the difference between the request time and the current time is too large (15 minutes at most)')
      }
      return undefined
    }
    if (signedAt - nowMs > MAX_SKEW_MS) throw new S3Error('AccessDenied', 'the presigned URL is not valid yet (X-Amz-Date is in the future)')
    const expiresAt = signedAt / 1000 + parsed.presigned.expires
    if (nowMs / 1000 > expiresAt) throw new S3Error('AccessDenied', 'request has expired')
    // As for the gateway's own links: the limit holds at each request, from now.
    if (maxLinkLifetime !== undefined && expiresAt - nowMs / 1000 > maxLinkLifetime) {
      throw new S3Error('AccessDenied', `the presigned URL expires more than ${maxLinkLifetime} s from now (auth.max_link_lifetime)`)
    }
    return expiresAt
  }

  function verify(incoming: IncomingMessage, path: string, params: QueryBag): VerifiedRequest {
    const authorization = incoming.headers.authorization
    const fromHeader = authorization !== undefined && authorization.startsWith(HEADER_PREFIX)
    if (fromHeader && single(params, 'X-Amz-Algorithm') !== undefined) throw new S3Error('InvalidArgument', 'only one auth mechanism allowed: an Authorization header or a presigned query, not both')
    const parsed = fromHeader ? parseHeaderAuth(authorization, incoming, region, prefixes) : parseQueryAuth(params, region)
    const signedAt = parseLongDate(parsed.longDate, fromHeader ? headerDateFailure : queryDateFailure)
    const expiresAt = checkTime(parsed, signedAt)
    const credential = credentials.get(parsed.accessKeyId)
    if (!credential) throw new S3Error('InvalidAccessKeyId', 'the AWS access key id you provided does not exist in our records')
    const headers = canonicalHeaders(incoming, parsed.signedHeaders)
    if (!headers) throw new S3Error('SignatureDoesNotMatch', 'a header named in SignedHeaders is missing from the request')
    const payloadHeader = headerOf(incoming, 'x-amz-content-sha256')
    if (fromHeader && payloadHeader === undefined) throw new S3Error('InvalidRequest', 'missing required header for this request: x-amz-content-sha256')
    // A presigned URL signs no payload unless the client sent a hash with it.
    const payload = payloadHeader ?? 'UNSIGNED-PAYLOAD'

    const canonical = canonicalRequest(incoming.method ?? 'GET', path, params, headers, parsed.signedHeaders, payload)
    const { scope, prefix } = parsed
    // A cached prefix keeps its signer: the access key and day are in the prefix.
    const signer = prefix ? (prefix.signer ??= signerOf(credential, parsed.shortDate)) : signerOf(credential, parsed.shortDate)
    // Both are 64 lower-case hex digits (parse.ts checked the one given).
    const expected = signer.hex(`${ALGORITHM}\n${parsed.longDate}\n${scope}\n${sha256Hex(canonical)}`)
    if (!equalHex(expected, parsed.signature)) {
      throw new S3Error('SignatureDoesNotMatch', 'the request signature we calculated does not match the signature you provided; check your key and signing method')
    }
    if (parsed.presigned) refuseUnsignedAmzHeaders(incoming, parsed.signedHeaders.set)
    return { credential, signature: parsed.signature, longDate: parsed.longDate, scope, payload: fromHeader ? payloadHeader : payload, expiresAt, signString: signer.hex }
  }

  return { verify }
}

export type SigV4Verifier = ReturnType<typeof createSigV4Verifier>

/** One header prefix or one query key: how a request says it is SigV4-signed (the hot path's only cost when the S3 API is on). */
export function isSigV4Request(incoming: IncomingMessage, query: string): boolean {
  const authorization = incoming.headers.authorization
  if (authorization !== undefined) return authorization.startsWith(HEADER_PREFIX)
  return query !== '' && query.includes('X-Amz-Algorithm=')
}
