/**
 * AWS Signature Version 4 on incoming requests, header (`Authorization: AWS4-HMAC-SHA256 …`)
 * or presigned query (`X-Amz-Algorithm=…&X-Amz-Signature=…`), checked synchronously (a memory
 * hit is answered with no promise). The query is canonicalised by `@smithy/signature-v4`'s
 * `getCanonicalQuery` (the signer the AWS SDKs use: its URI escaping is the error-prone part);
 * the rest of the canonical request is built here the way smithy's signer builds it (S3 signs
 * the path as sent; headers lower-cased, sorted, whitespace folded) and test/s3-sigv4-smithy.test.ts
 * checks the two agree on random requests. The signing key is derived once per (access key,
 * day) and kept (bounded) with its HMAC pads prepared (hmac.ts); the final HMAC is compared in
 * constant time.
 * AWS docs: "Authenticating Requests (AWS Signature Version 4)".
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { getCanonicalQuery } from '@smithy/signature-v4'
import { S3Error } from '../errors.ts'
import { headerOf } from '../headers.ts'
import { type QueryBag, hasAny, single } from '../query.ts'
import { HmacSha256 } from './hmac.ts'
import type { S3Credential } from './scope.ts'

export const ALGORITHM = 'AWS4-HMAC-SHA256'
/** How a signed Authorization header starts (one string, not one built per request). */
const HEADER_PREFIX = `${ALGORITHM} `
/** S3 refuses requests whose time is further than this from its own clock. */
export const MAX_SKEW_MS = 15 * 60 * 1000
/** A presigned URL lives at most 7 days (`X-Amz-Expires` ≤ 604800). */
export const MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
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

interface ParsedAuth {
  accessKeyId: string
  shortDate: string
  region: string
  /** `date/region/s3/aws4_request`. */
  scope: string
  signedHeaders: SignedHeaderList
  signature: string
  longDate: string
  presigned?: { expires: number }
  /** The cached prefix this came from (header auth), where the signer is kept once known. */
  prefix?: AuthorizationPrefix
}

const scopeOf = (shortDate: string, region: string) => `${shortDate}/${region}/s3/aws4_request`

const LONG_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/

/** The last date parsed (clients sign many requests within one second): no regex for a repeat. */
let lastLongDate = ''
let lastLongDateMs = 0

/** `YYYYMMDDTHHMMSSZ` → unix milliseconds. */
function parseLongDate(value: string | undefined, fail: (why: string) => S3Error): number {
  if (value === lastLongDate) return lastLongDateMs
  const m = value === undefined ? null : LONG_DATE.exec(value)
  if (!m) throw fail('X-Amz-Date must be YYYYMMDDTHHMMSSZ')
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]))
  if (!Number.isFinite(ms)) throw fail('X-Amz-Date is not a date')
  lastLongDate = value!
  lastLongDateMs = ms
  return ms
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

/** A SignedHeaders list: as a set, and sorted without repeats (the canonical request's order and its signed-headers line). */
interface SignedHeaderList {
  set: ReadonlySet<string>
  sorted: readonly string[]
  /** Each name's place in `sorted`. */
  positions: ReadonlyMap<string, number>
  line: string
}

/** Lists seen before (clients send the same few): no split per request. Cleared when full. */
const signedHeaderLists = new Map<string, SignedHeaderList>()
const SIGNED_HEADER_LISTS = 1000

function parseSignedHeaders(value: string | undefined, fail: (why: string) => S3Error): SignedHeaderList {
  const known = value === undefined ? undefined : signedHeaderLists.get(value)
  if (known) return known
  const names = value?.split(';') ?? []
  if (names.length === 0 || names.some((n) => !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(n))) throw fail('SignedHeaders must be lower-case header names separated by ";"')
  if (!names.includes('host')) throw fail('SignedHeaders must include host')
  const set = new Set(names)
  const sorted = [...set].sort()
  const list = { set, sorted, positions: new Map(sorted.map((name, at) => [name, at])), line: sorted.join(';') }
  if (value!.length <= 1024) {
    if (signedHeaderLists.size >= SIGNED_HEADER_LISTS) signedHeaderLists.clear()
    signedHeaderLists.set(value!, list)
  }
  return list
}

/** The layout every AWS SDK and CLI sends; anything else goes through the field-by-field parser. */
const USUAL_AUTHORIZATION = /^AWS4-HMAC-SHA256 Credential=([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([0-9a-f]{64})$/
const SIGNATURE = /^[0-9a-f]{64}$/

/**
 * What an Authorization header of the usual layout says before its 64-digit signature
 * (algorithm, credential scope, SignedHeaders), parsed and checked: the same for every request
 * a client signs that day, so a repeat costs one lookup, not a regex and two splits. Per
 * verifier (the region check is in it); cleared when full.
 */
interface AuthorizationPrefix {
  accessKeyId: string
  shortDate: string
  region: string
  scope: string
  signedHeaders: SignedHeaderList
  /** The signing key's HMAC, set by the verifier once the access key is known to exist. */
  signer?: HmacSha256
}
type AuthorizationPrefixes = Map<string, AuthorizationPrefix>
const AUTHORIZATION_PREFIXES = 1000

/** `Credential=…, SignedHeaders=…, Signature=…` as a map (`usual`: in the usual layout, read by one regex), any other layout field by field. */
function authorizationFields(authorization: string, fail: (why: string) => S3Error): { fields: Map<string, string>; usual: boolean } {
  const fields = new Map<string, string>()
  const usual = USUAL_AUTHORIZATION.exec(authorization)
  if (usual) return { fields: fields.set('Credential', usual[1]!).set('SignedHeaders', usual[2]!).set('Signature', usual[3]!), usual: true }
  for (const part of authorization.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=')
    if (eq === -1) throw fail('expected Credential=…, SignedHeaders=…, Signature=…')
    const name = part.slice(0, eq).trim()
    if (fields.has(name)) throw fail(`${name} given more than once`)
    fields.set(name, part.slice(eq + 1).trim())
  }
  return { fields, usual: false }
}

const headerAuthFailure = (why: string) => new S3Error('AuthorizationHeaderMalformed', `the authorization header is malformed: ${why}`)

function parseHeaderAuth(authorization: string, incoming: IncomingMessage, region: string, prefixes: AuthorizationPrefixes): ParsedAuth {
  const fail = headerAuthFailure
  const signatureAt = authorization.length - 64
  const signatureText = signatureAt > 0 ? authorization.slice(signatureAt) : ''
  let prefix = signatureAt > 0 && SIGNATURE.test(signatureText) ? prefixes.get(authorization.slice(0, signatureAt)) : undefined
  let signature = signatureText
  if (!prefix) {
    const { fields, usual } = authorizationFields(authorization, fail)
    const credential = parseCredential(fields.get('Credential'), region, fail)
    const signedHeaders = parseSignedHeaders(fields.get('SignedHeaders'), fail)
    signature = fields.get('Signature') ?? ''
    if (!SIGNATURE.test(signature)) throw fail('Signature must be 64 lower-case hex digits')
    prefix = { accessKeyId: credential.accessKeyId, shortDate: credential.shortDate, region: credential.region, scope: scopeOf(credential.shortDate, credential.region), signedHeaders, signer: undefined }
    if (usual && signatureAt <= 2048) {
      if (prefixes.size >= AUTHORIZATION_PREFIXES) prefixes.clear()
      prefixes.set(authorization.slice(0, signatureAt), prefix)
    }
  }
  const longDate = headerOf(incoming, 'x-amz-date')
  if (longDate === undefined || !prefix.signedHeaders.set.has('x-amz-date')) throw fail('x-amz-date must be sent and signed')
  if (!longDate.startsWith(prefix.shortDate)) throw fail('the credential scope date is not the date of X-Amz-Date')
  return { accessKeyId: prefix.accessKeyId, shortDate: prefix.shortDate, region: prefix.region, scope: prefix.scope, signedHeaders: prefix.signedHeaders, signature, longDate, prefix }
}

function parseQueryAuth(params: QueryBag, region: string): ParsedAuth {
  const fail = (why: string) => new S3Error('AuthorizationQueryParametersError', `the presigned URL is malformed: ${why}`)
  if (single(params, 'X-Amz-Algorithm') !== ALGORITHM) throw fail(`X-Amz-Algorithm must be ${ALGORITHM}`)
  if (single(params, 'X-Amz-Security-Token') !== undefined) throw fail('session tokens are not accepted')
  const credential = parseCredential(single(params, 'X-Amz-Credential'), region, fail)
  const signedHeaders = parseSignedHeaders(single(params, 'X-Amz-SignedHeaders'), fail)
  const signature = single(params, 'X-Amz-Signature')
  if (!signature || !SIGNATURE.test(signature)) throw fail('X-Amz-Signature must be 64 lower-case hex digits')
  const longDate = single(params, 'X-Amz-Date')
  if (!longDate?.startsWith(credential.shortDate)) throw fail('the credential scope date is not the date of X-Amz-Date')
  const expiresText = single(params, 'X-Amz-Expires')
  const expires = Number(expiresText)
  if (!expiresText || !/^\d{1,7}$/.test(expiresText) || expires < 1 || expires > MAX_PRESIGNED_SECONDS) {
    throw fail(`X-Amz-Expires must be a number of seconds from 1 to ${MAX_PRESIGNED_SECONDS} (7 days)`)
  }
  return { ...credential, scope: scopeOf(credential.shortDate, credential.region), signedHeaders, signature, longDate, presigned: { expires } }
}

/** Line breaks, tabs, runs of spaces, a leading or trailing space: what SigV4 folds in a header value. */
const UNFOLDED = /[\r\n\t]|  |^ | $/
/** A header value as SigV4 canonicalises it (smithy: line breaks to spaces, runs of blanks to one space, trimmed by one). */
const foldValue = (value: string) => (UNFOLDED.test(value) ? value.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '') : value)

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

/** The computed HMAC against a signature already checked to be 64 hex digits, in constant time. */
function equalSignature(expected: Buffer, hex: string): boolean {
  const given = Buffer.from(hex, 'hex')
  return given.length === expected.length && timingSafeEqual(expected, given)
}

const headerDateFailure = (why: string) => new S3Error('AuthorizationHeaderMalformed', why)
const queryDateFailure = (why: string) => new S3Error('AuthorizationQueryParametersError', why)

export interface SigV4Options {
  credentials: readonly S3Credential[]
  region: string
  now: () => number
}

/**
 * @example
 * const verifier = createSigV4Verifier({ credentials, region: 'us-east-1', now: Date.now })
 * const verified = verifier.verify(incoming, path, parseQuery(query))
 */
export function createSigV4Verifier(options: SigV4Options) {
  const { region, now } = options
  const credentials = new Map(options.credentials.map((credential) => [credential.accessKeyId, credential]))
  const signers = new Map<string, HmacSha256>()
  const prefixes: AuthorizationPrefixes = new Map()

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
    const expected = signer.digest(`${ALGORITHM}\n${parsed.longDate}\n${scope}\n${sha256Hex(canonical)}`)
    if (!equalSignature(expected, parsed.signature)) {
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
