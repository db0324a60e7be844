/**
 * The gateway builds the SigV4 canonical request itself (src/s3/auth/sigv4.ts, synchronous);
 * here it must accept exactly what `@smithy/signature-v4` (the AWS SDKs' signer) signs: random
 * methods, paths (unicode, spaces, reserved characters, encoded several ways), queries (repeated
 * names, empty values, valueless names), header sets (repeated blanks, tabs, empty values,
 * unsignable headers), header auth and presigned URLs. Each request goes over loopback to a real
 * node:http server running the verifier, and a copy with one signed part changed must be refused.
 */
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { SignatureV4 } from '@smithy/signature-v4'
import fc from 'fast-check'
import { splitTarget } from '../src/http/object/index.ts'
import { createSigV4Verifier } from '../src/s3/auth/sigv4.ts'
import { toS3Error } from '../src/s3/errors.ts'
import { parseQuery } from '../src/s3/query.ts'
import { NodeSha256 } from './helpers/s3-sign.ts'

const REGION = 'eu-west-3'
const NOW = Date.UTC(2026, 10, 29, 12, 34, 56)
const credentials = { accessKeyId: 'AKIDSMITHYAGREES', secretAccessKey: 'smithy-agrees-secret/0123456789+abc' }
const signer = new SignatureV4({ service: 's3', region: REGION, credentials, sha256: NodeSha256, uriEscapePath: false })
/** A second key whose Authorization prefix has the first one's length: the verifier's last-prefix shortcut must tell them apart. */
const other = { accessKeyId: 'AKIDSMITHYOTHERS', secretAccessKey: 'another-secret/0123456789+abcdefgh' }
const otherSigner = new SignatureV4({ service: 's3', region: REGION, credentials: other, sha256: NodeSha256, uriEscapePath: false })
const ALL_METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE'] as const)
const verifier = createSigV4Verifier({
  credentials: [
    { ...credentials, buckets: ['b'], methods: ALL_METHODS, prefix: '' },
    { ...other, buckets: ['b'], methods: ALL_METHODS, prefix: '' },
  ],
  region: REGION,
  now: () => NOW,
})

let server: http.Server
let port = 0
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })

before(async () => {
  // The verifier on a real server: the answer says `ok` or the S3 error code (a header: HEAD has no body).
  server = http.createServer((incoming, outgoing) => {
    const { path, query } = splitTarget(incoming.url ?? '/')
    let result = 'ok'
    try {
      verifier.verify(incoming, path, parseQuery(query))
    } catch (error) {
      result = toS3Error(error).code
    }
    outgoing.writeHead(200, { 'x-result': result, 'content-length': 0 })
    outgoing.end()
  })
  server.listen(0, '127.0.0.1')
  await new Promise((resolve) => server.once('listening', resolve))
  port = (server.address() as AddressInfo).port
})

after(async () => {
  agent.destroy()
  await new Promise((resolve) => server.close(resolve))
})

/** The verifier's verdict on one raw request. */
function send(method: string, target: string, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent }, (response) => {
      response.resume()
      response.on('end', () => resolve(String(response.headers['x-result'])))
    })
    request.on('error', reject)
    request.end()
  })
}

/** Every character but RFC 3986's unreserved ones percent-encoded (the SDK's form). */
const escapeAll = (text: string) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
/** As a browser or curl may send it: reserved characters (`$&+,/:;=@!'()*`) left as they are. */
const escapeLoose = (text: string) => encodeURI(text).replace(/[?#]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
const ENCODERS = [escapeAll, encodeURIComponent, escapeLoose]

const TEXT = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.constantFrom('', ' ', 'a b', 'ü/é', '日本', '%', '+', '=&', "!'()*", '~._-', '$,;:@', 'emoji 😀'),
)
const SEGMENT = TEXT.filter((s) => s !== '' && s !== '.' && s !== '..')
const PARAM_NAME = fc.oneof(fc.constantFrom('prefix', 'a', 'x-id', 'response-content-type', 'ü', 'a b', 'k=v', 'valueOf', 'toString', ''), TEXT).filter((n) => n !== '' && !['__proto__', 'constructor', 'prototype'].includes(n) && !n.toLowerCase().startsWith('x-amz-'))
const HEADER_VALUE = fc.stringMatching(/^[\t\x20-\x7e]{0,24}$/)
const HEADER_NAME = fc.oneof(
  fc.stringMatching(/^[a-z0-9]{1,8}$/).map((n) => `x-amz-meta-${n}`),
  fc.stringMatching(/^[a-z0-9]{1,8}$/).map((n) => `x-custom-${n}`),
  fc.constantFrom('content-type', 'content-md5', 'range', 'if-none-match', 'user-agent', 'cache-control', 'referer', 'x-amzn-trace-id'),
)

const REQUEST = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'DELETE'),
  segments: fc.array(SEGMENT, { minLength: 1, maxLength: 4 }),
  trailingSlash: fc.boolean(),
  pathEncoder: fc.nat({ max: ENCODERS.length - 1 }),
  params: fc.array(fc.tuple(PARAM_NAME, TEXT, fc.boolean()), { maxLength: 5 }),
  queryEncoder: fc.nat({ max: 1 }),
  headers: fc.dictionary(HEADER_NAME, HEADER_VALUE, { maxKeys: 5 }),
  presigned: fc.boolean(),
  payloadHeader: fc.boolean(),
  tamper: fc.constantFrom('path', 'query', 'header', 'method'),
})

type Query = Record<string, string | string[]>

/** The query on the wire: names and values encoded, an empty value sometimes sent as a bare name. */
function wireQuery(query: Query, bare: ReadonlySet<string>, encode: (text: string) => string): string {
  const pairs: string[] = []
  for (const [name, value] of Object.entries(query)) {
    for (const one of Array.isArray(value) ? value : [value]) pairs.push(one === '' && bare.has(name) ? encode(name) : `${encode(name)}=${encode(one)}`)
  }
  return pairs.join('&')
}

describe('SigV4 verification agrees with @smithy/signature-v4', () => {
  it('reads a query parameter named like an Object.prototype member as any other', () => {
    assert.deepEqual(parseQuery('valueOf=&toString=1&toString=2'), { valueOf: '', toString: ['1', '2'] })
  })


  it('keeps Authorization prefixes apart: two keys in turn, a signature moved to the other prefix, a changed signed-header list', async () => {
    const headers = { host: `127.0.0.1:${port}`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' }
    const request = (path: string, extra: Record<string, string> = {}) => ({ method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port, path, headers: { ...headers, ...extra } })
    const signingDate = new Date(NOW - 1000)
    const mine = await signer.sign(request('/b/one'), { signingDate })
    const theirs = await otherSigner.sign(request('/b/one'), { signingDate })
    const mineAuth = String(mine.headers.authorization)
    const theirsAuth = String(theirs.headers.authorization)
    assert.equal(mineAuth.length, theirsAuth.length)
    for (let round = 0; round < 3; round++) {
      assert.equal(await send('GET', '/b/one', mine.headers), 'ok')
      assert.equal(await send('GET', '/b/one', theirs.headers), 'ok')
    }
    // Each signature under the other key's prefix (same length; the other's prefix was the last one seen).
    const signatureOf = (auth: string) => auth.slice(-64)
    const swapped = (auth: string, signature: string) => `${auth.slice(0, -64)}${signature}`
    assert.equal(await send('GET', '/b/one', { ...theirs.headers, authorization: swapped(theirsAuth, signatureOf(mineAuth)) }), 'SignatureDoesNotMatch')
    assert.equal(await send('GET', '/b/one', { ...mine.headers, authorization: swapped(mineAuth, signatureOf(theirsAuth)) }), 'SignatureDoesNotMatch')
    // Another signed-header list (one more header): a prefix of its own, verified as such.
    const more = await signer.sign(request('/b/one', { 'x-amz-meta-a': '1' }), { signingDate })
    assert.equal(await send('GET', '/b/one', more.headers), 'ok')
    assert.equal(await send('GET', '/b/one', { ...more.headers, authorization: swapped(String(more.headers.authorization), signatureOf(mineAuth)) }), 'SignatureDoesNotMatch')
    // Two prefixes first seen one after the other, then the first again: the last one remembered is the second.
    const late = (signing: SignatureV4) => signing.sign(request('/b/one', { 'x-amz-meta-late': '1' }), { signingDate })
    const [lateMine, lateTheirs] = await Promise.all([late(signer), late(otherSigner)])
    for (const headers of [lateMine.headers, lateMine.headers, lateTheirs.headers, lateMine.headers, lateTheirs.headers]) assert.equal(await send('GET', '/b/one', headers), 'ok')
    // A signature that is not 64 lower-case hex digits is malformed, whether or not its prefix is known.
    assert.equal(await send('GET', '/b/one', { ...mine.headers, authorization: swapped(mineAuth, signatureOf(mineAuth).toUpperCase()) }), 'AuthorizationHeaderMalformed')
    assert.equal(await send('GET', '/b/one', { ...mine.headers, authorization: `${mineAuth.slice(0, -1)}g` }), 'AuthorizationHeaderMalformed')
    assert.equal(await send('GET', '/b/one', mine.headers), 'ok')
  })

  it('accepts what smithy signs and refuses it once one signed part changes', async () => {
    await fc.assert(
      fc.asyncProperty(REQUEST, async (r) => {
        const encodePath = ENCODERS[r.pathEncoder]!
        const path = `/${r.segments.map(encodePath).join('/')}${r.trailingSlash ? '/' : ''}`
        const query: Query = {}
        const bare = new Set<string>()
        for (const [name, value, asBare] of r.params) {
          const previous = Object.hasOwn(query, name) ? query[name] : undefined
          query[name] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value]
          if (asBare) bare.add(name)
        }
        const headers: Record<string, string> = { host: `127.0.0.1:${port}`, 'content-length': '0', ...r.headers }
        if (r.payloadHeader || !r.presigned) headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'
        const request = { method: r.method, protocol: 'http:', hostname: '127.0.0.1', port, path, query, headers, body: r.presigned ? {} : undefined }
        const signingDate = new Date(NOW - 1000)
        // A presigned URL keeps its payload header a header (as the SDK's presigner does); other x-amz-* go in the query.
        const signed = r.presigned
          ? await signer.presign(request, { signingDate, expiresIn: 900, unhoistableHeaders: new Set(['x-amz-content-sha256']) })
          : await signer.sign(request, { signingDate })
        const sentQuery = signed.query as Query
        const target = (q: Query, p = path) => {
          const text = wireQuery(q, bare, r.queryEncoder === 0 ? escapeAll : encodeURIComponent)
          return text === '' ? p : `${p}?${text}`
        }
        assert.equal(await send(r.method, target(sentQuery), signed.headers), 'ok', `${r.method} ${target(sentQuery)} ${JSON.stringify(signed.headers)}`)

        // One signed part changed: the signature no longer holds.
        let verdict: string
        if (r.tamper === 'path') verdict = await send(r.method, target(sentQuery, `${path}x`), signed.headers)
        else if (r.tamper === 'query') verdict = await send(r.method, target({ ...sentQuery, extra: 'x' }), signed.headers)
        else if (r.tamper === 'header') verdict = await send(r.method, target(sentQuery), { ...signed.headers, host: `localhost:${port}` })
        else verdict = await send(r.method === 'PUT' ? 'POST' : 'PUT', target(sentQuery), signed.headers)
        assert.equal(verdict, 'SignatureDoesNotMatch', `tampered ${r.tamper}`)
      }),
      { numRuns: 300 },
    )
  })
})
