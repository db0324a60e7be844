/**
 * Reading a SigV4 request's own claims — the Authorization header's Credential, SignedHeaders
 * and Signature, or the presigned query's X-Amz-* parameters, and X-Amz-Date — checked for
 * form before any signature is computed (sigv4.ts verifies them).
 */
import type { IncomingMessage } from 'node:http'
import { S3Error } from '../errors.ts'
import { headerOf } from '../headers.ts'
import { type QueryBag, single } from '../query.ts'
import type { HmacSha256 } from './hmac.ts'

export const ALGORITHM = 'AWS4-HMAC-SHA256'
/** How a signed Authorization header starts (one string, not one built per request). */
export const HEADER_PREFIX = `${ALGORITHM} `
/** S3 refuses requests whose time is further than this from its own clock. */
export const MAX_SKEW_MS = 15 * 60 * 1000
/** A presigned URL lives at most 7 days (`X-Amz-Expires` ≤ 604800). */
export const MAX_PRESIGNED_SECONDS = 7 * 24 * 3600

export interface ParsedAuth {
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

export const scopeOf = (shortDate: string, region: string) => `${shortDate}/${region}/s3/aws4_request`

const LONG_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/

/** The last date parsed (clients sign many requests within one second): no regex for a repeat. */
let lastLongDate = ''
let lastLongDateMs = 0

/** `YYYYMMDDTHHMMSSZ` → unix milliseconds. */
export function parseLongDate(value: string | undefined, fail: (why: string) => S3Error): number {
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
export interface SignedHeaderList {
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
export interface AuthorizationPrefix {
  accessKeyId: string
  shortDate: string
  region: string
  scope: string
  signedHeaders: SignedHeaderList
  /** The signing key's HMAC, set by the verifier once the access key is known to exist. */
  signer?: HmacSha256
}
const AUTHORIZATION_PREFIXES = 1000

/**
 * The prefixes seen before (bounded: cleared when full), and the last one used: a client sends
 * request after request with the same prefix, and one string comparison costs less than hashing
 * a 150-character key for the map.
 */
export class AuthorizationPrefixes {
  readonly #known = new Map<string, AuthorizationPrefix>()
  #lastText = ''
  #last: AuthorizationPrefix | undefined

  /** The known prefix of `authorization`, whose signature starts at `signatureAt`. */
  get(authorization: string, signatureAt: number): AuthorizationPrefix | undefined {
    const text = authorization.slice(0, signatureAt)
    if (text === this.#lastText) return this.#last
    const known = this.#known.get(text)
    if (known) this.#remember(text, known)
    return known
  }

  set(text: string, prefix: AuthorizationPrefix): void {
    if (this.#known.size >= AUTHORIZATION_PREFIXES) this.#known.clear()
    this.#known.set(text, prefix)
    this.#remember(text, prefix)
  }

  #remember(text: string, prefix: AuthorizationPrefix): void {
    this.#lastText = text
    this.#last = prefix
  }
}

/** 64 lower-case hex digits from `at` to the end of `text` (a character loop: no slice, no regex). */
function endsWithSignature(text: string, at: number): boolean {
  if (at <= 0 || text.length - at !== 64) return false
  for (let i = at; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false
  }
  return true
}

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

export const headerAuthFailure = (why: string) => new S3Error('AuthorizationHeaderMalformed', `the authorization header is malformed: ${why}`)

export function parseHeaderAuth(authorization: string, incoming: IncomingMessage, region: string, prefixes: AuthorizationPrefixes): ParsedAuth {
  const fail = headerAuthFailure
  const signatureAt = authorization.length - 64
  let prefix = endsWithSignature(authorization, signatureAt) ? prefixes.get(authorization, signatureAt) : undefined
  let signature = prefix ? authorization.slice(signatureAt) : ''
  if (!prefix) {
    const { fields, usual } = authorizationFields(authorization, fail)
    const credential = parseCredential(fields.get('Credential'), region, fail)
    const signedHeaders = parseSignedHeaders(fields.get('SignedHeaders'), fail)
    signature = fields.get('Signature') ?? ''
    if (!SIGNATURE.test(signature)) throw fail('Signature must be 64 lower-case hex digits')
    prefix = { accessKeyId: credential.accessKeyId, shortDate: credential.shortDate, region: credential.region, scope: scopeOf(credential.shortDate, credential.region), signedHeaders, signer: undefined }
    if (usual && signatureAt <= 2048) prefixes.set(authorization.slice(0, signatureAt), prefix)
  }
  const longDate = headerOf(incoming, 'x-amz-date')
  if (longDate === undefined || !prefix.signedHeaders.set.has('x-amz-date')) throw fail('x-amz-date must be sent and signed')
  if (!longDate.startsWith(prefix.shortDate)) throw fail('the credential scope date is not the date of X-Amz-Date')
  return { accessKeyId: prefix.accessKeyId, shortDate: prefix.shortDate, region: prefix.region, scope: prefix.scope, signedHeaders: prefix.signedHeaders, signature, longDate, prefix }
}

export function parseQueryAuth(params: QueryBag, region: string): ParsedAuth {
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

