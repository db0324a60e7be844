/**
 * Version 2 links, key ids, link lifetime and scoped tokens, unit level (src/auth/payload-v2.ts,
 * presign.ts, tokens.ts, middleware.ts). The gateway side is test/auth-scoped-gateway.test.ts.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import fc from 'fast-check'
import { createVerifier, decodeBase64Url, encodeBase64Url, generateKeyPair, sign } from '../src/auth/keys.ts'
import { type AuthRequest, createAuthenticator } from '../src/auth/middleware.ts'
import { checkScope, parsePayloadV2 } from '../src/auth/payload-v2.ts'
import { type KeyRing, presign, presignPayload, signPayload, verifyLink, verifySignature } from '../src/auth/presign.ts'
import { type TokenEntry, createTokenMatcher, generateToken, hashToken, tokenAllows, tokenRefusal } from '../src/auth/tokens.ts'
import { parseSeconds } from '../src/config/duration.ts'
import { validateConfig } from '../src/config/load.ts'
import { ROOT } from './helpers/gateway.ts'
import { AuthError, ForbiddenError } from '../src/errors.ts'

const NOW = 1_800_000_000_000
const NOW_S = NOW / 1000
const keys = generateKeyPair()
const other = generateKeyPair()
const ring = (...pairs: { public_key: string }[]): KeyRing => ({ all: pairs.map((k) => createVerifier(decodeBase64Url(k.public_key)!)), byId: new Map() })

/** The message a client sees for an error (JSON `message`), and its status. */
function refusal(fn: () => unknown): { status: number; message: string } {
  try {
    fn()
  } catch (error) {
    if (error instanceof AuthError) return { status: 401, message: error.shown }
    if (error instanceof ForbiddenError) return { status: 403, message: error.message }
    throw error
  }
  return { status: 200, message: '' }
}

const v2 = (over: Record<string, unknown> = {}) => ({ v: 2, exp: NOW_S + 600, m: 'GET', b: 'media', p: 'a.txt', ...over })
/** Signs any object, even one the types would refuse. */
const signed = (payload: object, pair = keys) => {
  const bytes = new TextEncoder().encode(JSON.stringify(payload))
  return `${encodeBase64Url(bytes)}.${encodeBase64Url(sign(bytes, decodeBase64Url(pair.private_key)!))}`
}

describe("Cachegate's version 1 vectors (../shared/vectors/cachegate-links.json)", () => {
  // The shared fixtures sit beside the clone (in CI too): read there, never copied.
  const vectors = JSON.parse(readFileSync(path.join(ROOT, '../shared/vectors/cachegate-links.json'), 'utf8')) as {
    cases: { name: string; public_key: string; payload: string; request: string; sig: string }[]
  }
  for (const vector of vectors.cases) {
    it(`${vector.name}: verifies, before its expiry, through Cachegate's verifier and ours`, () => {
      const [method, target] = vector.request.split(' ') as [string, string]
      const [, bucket, ...rest] = target.split('/')
      const payload = JSON.parse(vector.payload) as { exp: number }
      const verifier = createVerifier(decodeBase64Url(vector.public_key)!)
      assert.deepEqual(verifySignature(vector.sig, [verifier]), payload)
      const before = (payload.exp - 60) * 1000
      const authenticate = createAuthenticator({ publicKey: vector.public_key, now: () => before })
      const request: AuthRequest = { method, bucket: bucket!, key: rest.join('/'), sig: vector.sig }
      assert.deepEqual(authenticate(request), { kind: 'presigned', expiresAt: payload.exp })
      // With key ids configured (the vector key among them) the v1 link still verifies.
      const withIds = createAuthenticator({ keys: [{ id: 'other', public_key: other.public_key }, { id: 'cg', public_key: vector.public_key }], now: () => before })
      assert.equal(withIds(request).kind, 'presigned')
      const after = createAuthenticator({ publicKey: vector.public_key, now: () => payload.exp * 1000 })
      assert.equal(refusal(() => after(request)).message, 'expired')
    })
  }
})

describe('v2 payload parser', () => {
  const refusals: [string, Record<string, unknown>, string][] = [
    ['unknown field', v2({ admin: true }), 'malformed payload: unknown field "admin"'],
    ['exp not an integer', v2({ exp: 1.5 }), 'malformed payload: exp is not an integer'],
    ['exp a string', v2({ exp: String(NOW_S + 600) }), 'malformed payload: exp is not an integer'],
    ['nbf not an integer', v2({ nbf: '0' }), 'malformed payload: nbf is not an integer'],
    ['nbf after exp', v2({ nbf: NOW_S + 601 }), 'malformed payload: nbf is not before exp'],
    ['m unknown', v2({ m: 'DELETE' }), 'malformed payload: m must be GET, HEAD, PUT or a list of them'],
    ['m empty list', v2({ m: [] }), 'malformed payload: m must be GET, HEAD, PUT or a list of them'],
    ['m lower case', v2({ m: 'get' }), 'malformed payload: m must be GET, HEAD, PUT or a list of them'],
    ['b missing', v2({ b: undefined }), 'malformed payload: b is not a bucket id'],
    ['b a number', v2({ b: 7 }), 'malformed payload: b is not a bucket id'],
    ['both p and pp', v2({ pp: 'a/' }), 'malformed payload: exactly one of p and pp is required'],
    ['neither p nor pp', v2({ p: undefined }), 'malformed payload: exactly one of p and pp is required'],
    ['p not a string', v2({ p: 1 }), 'malformed payload: p is not a string'],
    ['pp empty', v2({ p: undefined, pp: '' }), 'malformed payload: pp must be a non-empty prefix ending with "/"'],
    ['pp not at a segment boundary', v2({ p: undefined, pp: 'photos/2024' }), 'malformed payload: pp must be a non-empty prefix ending with "/"'],
    ['kid empty', v2({ kid: '' }), 'malformed payload: kid is not a key id'],
    ['ip not an address', v2({ ip: 'localhost' }), 'malformed payload: ip is not an address or CIDR'],
    ['ip with a bad prefix length', v2({ ip: '10.0.0.0/33' }), 'malformed payload: ip is not an address or CIDR'],
    ['ms negative', v2({ m: 'PUT', ms: -1 }), 'malformed payload: ms is not a byte count'],
    ['ms a string', v2({ m: 'PUT', ms: '10' }), 'malformed payload: ms is not a byte count'],
    ['ms on a GET link', v2({ ms: 10 }), 'malformed payload: ms and ct are for PUT links only'],
    ['ct not a media type', v2({ m: 'PUT', ct: 'text' }), 'malformed payload: ct is not a content type'],
    ['ct on a GET link', v2({ ct: 'text/plain' }), 'malformed payload: ms and ct are for PUT links only'],
    ['fn empty', v2({ fn: '' }), 'malformed payload: fn is not a file name'],
    ['fn with a lone surrogate', v2({ fn: 'a\ud800.txt' }), 'malformed payload: fn is not a file name'],
    ['fn with a control character', v2({ fn: 'a\nb.txt' }), 'malformed payload: fn is not a file name'],
    ['fn with a path', v2({ fn: 'dir/a.txt' }), 'malformed payload: fn is not a file name'],
    ['fn with a backslash path', v2({ fn: 'dir\\a.txt' }), 'malformed payload: fn is not a file name'],
    ['fn dot-dot', v2({ fn: '..' }), 'malformed payload: fn is not a file name'],
    ['fn on a PUT link', v2({ m: 'PUT', fn: 'a.txt' }), 'malformed payload: fn and disp are for GET links only'],
    ['disp unknown', v2({ disp: 'download' }), 'malformed payload: disp must be "attachment" or "inline"'],
  ]
  for (const [name, payload, message] of refusals) {
    it(`refuses ${name} (401: "${message}")`, () => {
      assert.deepEqual(refusal(() => verifyLink(signed(payload), ring(keys))), { status: 401, message })
    })
  }

  it('accepts every field, with GET allowing HEAD and the disposition computed once', () => {
    const link = parsePayloadV2(v2({ nbf: NOW_S - 5, m: ['GET', 'PUT'], kid: 'k1', ip: '2001:db8::/32', ms: 100, ct: 'image/png', fn: 'ünïcode "quoted".txt', disp: 'inline' }))
    assert.deepEqual([...link.methods].sort(), ['GET', 'HEAD', 'PUT'])
    // RFC 6266 §4.3 / RFC 8187: an ASCII fallback (accents dropped, quotes escaped), then the UTF-8 name.
    assert.equal(link.disposition, `inline; filename="unicode \\"quoted\\".txt"; filename*=UTF-8''%C3%BCn%C3%AFcode%20%22quoted%22.txt`)
    assert.equal(parsePayloadV2(v2({ fn: 'отчёт.pdf' })).disposition, `attachment; filename="?????.pdf"; filename*=UTF-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf`)
    assert.equal(parsePayloadV2(v2({ fn: 'report.pdf' })).disposition, 'attachment; filename="report.pdf"')
    assert.equal(parsePayloadV2(v2({ disp: 'inline' })).disposition, 'inline')
    assert.equal(parsePayloadV2(v2()).disposition, undefined)
  })

  it('checks the clock (401) and the scope (403) on every request, with messages that name the failed scope', () => {
    const link = parsePayloadV2(v2({ nbf: NOW_S + 10, m: 'GET', p: undefined, pp: 'photos/', ip: '192.0.2.0/24' }))
    const request = { method: 'GET', bucket: 'media', path: 'photos/a.jpg', client: () => '192.0.2.7' }
    const check = (over: Partial<typeof request>, at = NOW + 20_000) => refusal(() => checkScope(link, { ...request, ...over }, at))
    assert.deepEqual(check({}), { status: 200, message: '' })
    assert.deepEqual(check({ method: 'HEAD' }), { status: 200, message: '' })
    assert.deepEqual(check({}, NOW), { status: 401, message: `link not valid before ${new Date((NOW_S + 10) * 1000).toISOString()}` })
    assert.deepEqual(check({}, (NOW_S + 600) * 1000), { status: 401, message: 'expired' })
    assert.deepEqual(check({ method: 'PUT' }), { status: 403, message: 'link does not allow PUT' })
    assert.deepEqual(check({ bucket: 'other' }), { status: 403, message: 'link is for bucket media only' })
    assert.deepEqual(check({ path: 'photosX/a.jpg' }), { status: 403, message: 'link is for prefix photos/ only' })
    assert.deepEqual(check({ path: 'photos' }), { status: 403, message: 'link is for prefix photos/ only' })
    assert.deepEqual(check({ client: () => '198.51.100.1' }), { status: 403, message: 'link is for client address 192.0.2.0/24 only' })
    assert.deepEqual(check({ client: () => 'unknown' }), { status: 403, message: 'link is for client address 192.0.2.0/24 only' })
    const exact = parsePayloadV2(v2({ m: 'HEAD' }))
    assert.deepEqual(refusal(() => checkScope(exact, { method: 'GET', bucket: 'media', path: 'a.txt' }, NOW)), { status: 403, message: 'link does not allow GET' })
    assert.deepEqual(refusal(() => checkScope(exact, { method: 'HEAD', bucket: 'media', path: 'b.txt' }, NOW)), { status: 403, message: 'link is for another path' })
    const v6 = parsePayloadV2(v2({ ip: '2001:db8::/32' }))
    assert.equal(refusal(() => checkScope(v6, { method: 'GET', bucket: 'media', path: 'a.txt', client: () => '2001:db8:1::5' }, NOW)).status, 200)
    assert.equal(refusal(() => checkScope(v6, { method: 'GET', bucket: 'media', path: 'a.txt', client: () => '2001:db9::5' }, NOW)).status, 403)
  })

  it('property: every payload presign() can make verifies to exactly its fields; anything else signed is an AuthError, never a crash', () => {
    const text = fc.string({ minLength: 1, maxLength: 12 })
    const options = fc.record(
      {
        method: fc.constantFrom('GET', 'HEAD', 'PUT', ['GET', 'PUT'], ['HEAD', 'PUT']) as fc.Arbitrary<'GET' | 'HEAD' | 'PUT' | ('GET' | 'HEAD' | 'PUT')[]>,
        prefix: text.map((t) => `${t}/`),
        notBefore: fc.integer({ min: -100, max: 100 }),
        keyId: text,
        ip: fc.constantFrom('10.0.0.1', '10.0.0.0/8', '::1', '2001:db8::/48'),
        maxSize: fc.nat(),
        contentType: fc.constantFrom('image/png', 'text/plain; charset=utf-8'),
        filename: fc.string({ unit: fc.constantFrom('a', 'é', '"', ' ', ';', '—', '.', '%', '😀'), minLength: 1, maxLength: 12 }).filter((n) => n !== '.' && n !== '..'),
        disposition: fc.constantFrom('attachment', 'inline') as fc.Arbitrary<'attachment' | 'inline'>,
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(options, text, (o, path) => {
        const put = [o.method ?? 'GET'].flat().includes('PUT')
        const get = [o.method ?? 'GET'].flat().some((m) => m !== 'PUT')
        const chosen = { ...o, ...(put ? {} : { maxSize: undefined, contentType: undefined }), ...(get ? {} : { filename: undefined, disposition: undefined }), expiresIn: 600 }
        const payload = presignPayload({ baseUrl: 'http://h', bucket: 'b', path: o.prefix ? undefined : path, privateKey: keys.private_key, now: NOW, version: 2, ...chosen })
        const verifier = createVerifier(decodeBase64Url(keys.public_key)!)
        const link = verifyLink(signPayload(payload, keys.private_key), { all: [verifier], byId: new Map([[o.keyId ?? '', verifier]]) })
        assert.equal(link.v, 2)
        if (link.v === 2) assert.deepEqual(link.payload, JSON.parse(JSON.stringify(payload)))
      }),
      { numRuns: 200 },
    )
    const loose = fc.dictionary(fc.constantFrom('v', 'exp', 'nbf', 'm', 'b', 'p', 'pp', 'kid', 'ip', 'ms', 'ct', 'fn', 'disp', 'x'), fc.oneof(fc.jsonValue(), fc.constantFrom(2, 'GET', 'a/', NOW_S + 10)))
    fc.assert(
      fc.property(loose, (value) => {
        try {
          const link = verifyLink(signed({ ...value, v: 2 }), ring(keys))
          assert.ok(!('x' in value), 'an unknown field was accepted')
          assert.equal(link.v, 2)
          if (link.v === 2) {
            assert.ok(Number.isSafeInteger(link.payload.exp) && typeof link.payload.b === 'string')
            assert.ok((link.payload.p === undefined) !== (link.payload.pp === undefined))
          }
        } catch (error) {
          assert.ok(error instanceof AuthError, String(error))
        }
      }),
      { numRuns: 300 },
    )
  })
})

describe('key ids, rotation and max_link_lifetime', () => {
  const k1 = generateKeyPair()
  const k2 = generateKeyPair()
  const authenticate = createAuthenticator({ publicKey: keys.public_key, keys: [{ id: 'k1', public_key: k1.public_key }, { id: 'k2', public_key: k2.public_key }], maxLinkLifetime: 3600, now: () => NOW })
  const request = (sig: string, over: Partial<AuthRequest> = {}): AuthRequest => ({ method: 'GET', bucket: 'media', key: 'a.txt', sig, ...over })

  it('a link naming a key id is verified by that key only; one without is verified by any key in order', () => {
    assert.equal(authenticate(request(signed(v2({ kid: 'k2' }), k2))).kind, 'presigned')
    assert.deepEqual(refusal(() => authenticate(request(signed(v2({ kid: 'k1' }), k2)))), { status: 401, message: 'bad signature' })
    assert.deepEqual(refusal(() => authenticate(request(signed(v2({ kid: 'k9' }), k2)))), { status: 401, message: 'bad signature: unknown key id' })
    // Without kid: public_key, then each of auth.keys.
    for (const pair of [keys, k1, k2]) assert.equal(authenticate(request(signed(v2(), pair))).kind, 'presigned')
    assert.equal(authenticate(request(signPayload({ v: 1, exp: NOW_S + 60, m: 'GET', b: 'media', p: 'a.txt' }, k2.private_key))).kind, 'presigned')
    assert.deepEqual(refusal(() => authenticate(request(signed(v2(), other)))), { status: 401, message: 'bad signature' })
  })

  it('with kid, exactly one verification runs whatever the number of keys', () => {
    let calls = 0
    const counting = (pair: { public_key: string }) => {
      const check = createVerifier(decodeBase64Url(pair.public_key)!)
      return (s: Uint8Array, m: Uint8Array) => (calls++, check(s, m))
    }
    const many = Array.from({ length: 5 }, () => generateKeyPair())
    const checks = many.map(counting)
    const keyRing: KeyRing = { all: checks, byId: new Map(many.map((_, i) => [`k${i}`, checks[i]!])) }
    verifyLink(signed(v2({ kid: 'k4' }), many[4]), keyRing)
    assert.equal(calls, 1)
    calls = 0
    verifyLink(signed(v2(), many[4]), keyRing)
    assert.equal(calls, 5)
  })

  it('auth.keys alone is enough: no public_key needed', () => {
    const only = createAuthenticator({ keys: [{ id: 'k1', public_key: k1.public_key }], now: () => NOW })
    assert.equal(only(request(signed(v2({ kid: 'k1' }), k1))).kind, 'presigned')
  })

  it('refuses links of either version whose expiry is further away than max_link_lifetime, checked at each request', () => {
    const message = "link lifetime exceeds the gateway's limit of 3600 s"
    assert.deepEqual(refusal(() => authenticate(request(signed(v2({ exp: NOW_S + 3601 }))))), { status: 401, message })
    // The credential is refused before its scope is looked at.
    assert.deepEqual(refusal(() => authenticate(request(signed(v2({ exp: NOW_S + 3601 })), { bucket: 'other' }))), { status: 401, message })
    assert.deepEqual(refusal(() => authenticate(request(signPayload({ v: 1, exp: NOW_S + 3601, m: 'GET', b: 'media', p: 'a.txt' }, keys.private_key)))), { status: 401, message })
    assert.equal(authenticate(request(signed(v2({ exp: NOW_S + 3600 })))).kind, 'presigned')
    // The same long link becomes acceptable once it is close enough to its expiry.
    let clock = NOW
    const later = createAuthenticator({ publicKey: keys.public_key, maxLinkLifetime: 3600, now: () => clock })
    const sig = signed(v2({ exp: NOW_S + 7200 }))
    assert.equal(refusal(() => later(request(sig))).status, 401)
    clock = NOW + 3600_000
    assert.equal(later(request(sig)).kind, 'presigned')
  })

  it('a v2 principal carries maxSize, contentType and disposition for the handlers', () => {
    const put = authenticate(request(signed(v2({ m: 'PUT', ms: 10, ct: 'text/plain' })), { method: 'PUT' }))
    assert.deepEqual(put, { kind: 'presigned', expiresAt: NOW_S + 600, maxSize: 10, contentType: 'text/plain', disposition: undefined })
    const get = authenticate(request(signed(v2({ fn: 'r.pdf' }))))
    assert.equal(get.kind === 'presigned' && get.disposition, 'attachment; filename="r.pdf"')
  })

  it('presign() makes v1 links unless a v2 field is asked for', () => {
    const sigOf = (url: string) => JSON.parse(Buffer.from(new URL(url).searchParams.get('sig')!.split('.')[0]!, 'base64url').toString())
    const base = { baseUrl: 'http://h', bucket: 'media', privateKey: keys.private_key, now: NOW, expiresIn: 60 }
    assert.deepEqual(sigOf(presign({ ...base, path: 'a.txt' })), { v: 1, exp: NOW_S + 60, m: 'GET', b: 'media', p: 'a.txt' })
    const url = presign({ ...base, prefix: 'up/', path: 'up/x y.bin', method: ['PUT', 'GET'], notBefore: -30, keyId: 'k1', ip: '10.0.0.0/8', maxSize: 5, contentType: 'image/png', filename: 'x.png', disposition: 'inline' })
    assert.equal(new URL(url).pathname, '/media/up/x%20y.bin')
    assert.deepEqual(sigOf(url), { v: 2, exp: NOW_S + 60, nbf: NOW_S - 30, m: ['PUT', 'GET'], b: 'media', pp: 'up/', kid: 'k1', ip: '10.0.0.0/8', ms: 5, ct: 'image/png', fn: 'x.png', disp: 'inline' })
    assert.throws(() => presign({ ...base, prefix: 'up' }), /pp must be a non-empty prefix ending with "\/"/)
    assert.throws(() => presign({ ...base, path: 'a', maxSize: 5 }), /ms and ct are for PUT links only/)
    assert.throws(() => presign({ ...base, prefix: 'up/', path: 'down/a' }), /path must start with prefix/)
  })
})

describe('scoped tokens', () => {
  const ci = generateToken()
  const admin = generateToken()
  const tokens: TokenEntry[] = [
    { id: 'ci', sha256: hashToken(ci), buckets: ['media'], methods: ['GET'], prefix: 'builds/' },
    { id: 'ops', sha256: hashToken(admin), buckets: ['*'], methods: ['PUT', 'ADMIN'] },
  ]
  const plain = 'plain-bearer-token-0123456789'
  const authenticate = createAuthenticator({ bearerToken: plain, tokens })
  const request = (token: string, over: Partial<AuthRequest> = {}): AuthRequest => ({ method: 'GET', bucket: 'media', key: 'builds/1.zip', authorization: `Bearer ${token}`, ...over })

  it('matches a token by its SHA-256 and names its id, never the token', () => {
    assert.match(ci, /^cg_[A-Za-z0-9_-]{43}$/)
    assert.equal(hashToken('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad') // FIPS 180-2 test vector
    const find = createTokenMatcher(tokens)
    assert.equal(find(ci)?.id, 'ci')
    assert.equal(find(`${ci}x`), undefined)
    assert.equal(find(hashToken(ci)), undefined)
    assert.deepEqual(authenticate(request(ci)), { kind: 'bearer', tokenId: 'ci' })
    assert.deepEqual(authenticate(request(plain)), { kind: 'bearer' })
  })

  it('out of scope is 403 with the scope that failed; an unknown token is 401', () => {
    assert.deepEqual(authenticate(request(ci, { method: 'HEAD' })), { kind: 'bearer', tokenId: 'ci' }) // GET allows HEAD
    assert.deepEqual(refusal(() => authenticate(request(ci, { method: 'PUT' }))), { status: 403, message: 'token ci may not PUT' })
    assert.deepEqual(refusal(() => authenticate(request(ci, { bucket: 'other' }))), { status: 403, message: 'token ci may not use bucket other' })
    assert.deepEqual(refusal(() => authenticate(request(ci, { key: 'src/1.zip' }))), { status: 403, message: 'token ci is for prefix builds/ only' })
    assert.deepEqual(refusal(() => authenticate(request(`${ci}x`))), { status: 401, message: 'bad token' })
    const error = (() => {
      try {
        authenticate(request(ci, { method: 'PUT' }))
      } catch (e) {
        return e as ForbiddenError
      }
    })()
    assert.equal(error?.tokenId, 'ci')
    assert.ok(!String(error?.message).includes(ci))
    // Tokens alone are enough bearer config.
    assert.equal(createAuthenticator({ tokens })(request(admin, { method: 'PUT', bucket: 'any' })).kind, 'bearer')
  })

  it('ADMIN is a method of its own (the purge endpoint), not allowed by the others', () => {
    assert.equal(tokenAllows(tokens[1]!, 'ADMIN', 'media', 'x'), true)
    assert.equal(tokenAllows(tokens[0]!, 'ADMIN', 'media', 'builds/x'), false)
    assert.equal(tokenRefusal(tokens[1]!, 'GET', 'media', 'x'), 'token ops may not GET')
  })

  it('refuses a malformed digest or the same token twice at construction', () => {
    assert.throws(() => createTokenMatcher([{ ...tokens[0]!, sha256: 'AB'.repeat(32) }]), /64 lowercase hex/)
    assert.throws(() => createTokenMatcher([tokens[0]!, { ...tokens[0]!, id: 'twin' }]), /configured twice/)
  })
})

describe('auth config: keys, tokens, max_link_lifetime', () => {
  const base = { listen: '127.0.0.1:0', stores: { media: { type: 'fs', root: '/tmp' }, other: { type: 'fs', root: '/tmp' } } }
  const problems = (auth: Record<string, unknown>) => {
    try {
      validateConfig({ ...base, auth })
      return ''
    } catch (error) {
      return (error as Error).message
    }
  }

  it('parses durations in seconds', () => {
    for (const [text, seconds] of [[3600, 3600], ['3600', 3600], ['30s', 30], ['10m', 600], ['1h', 3600], ['7d', 604_800], [' 2H ', 7200], ['1.5h', 5400]] as const) assert.equal(parseSeconds(text), seconds)
    for (const bad of ['', '1.5s', '250ms', '-1', '1w', 'h', 1.5, -3, '99999999999999999d']) assert.equal(parseSeconds(bad), undefined, String(bad))
  })

  it('accepts keys or tokens alone, and normalises lists and methods', () => {
    const config = validateConfig({ ...base, auth: { keys: [{ id: 'k1', public_key: keys.public_key }], tokens: [{ id: 'ci', sha256: 'a'.repeat(64), buckets: 'media, other', methods: 'get,HEAD', prefix: 'b/' }], max_link_lifetime: '7d' } })
    assert.deepEqual(config.auth.keys, [{ id: 'k1', public_key: keys.public_key }])
    assert.deepEqual(config.auth.tokens, [{ id: 'ci', sha256: 'a'.repeat(64), buckets: ['media', 'other'], methods: ['GET', 'HEAD'], prefix: 'b/' }])
    assert.equal(config.auth.max_link_lifetime, 604_800)
    assert.equal(validateConfig({ ...base, auth: { tokens: [{ id: 'all', sha256: 'b'.repeat(64), buckets: ['*'], methods: ['ADMIN'] }] } }).auth.tokens[0]!.buckets[0], '*')
  })

  it('lists every problem by key path, never a value', () => {
    const text = problems({
      private_key: other.private_key,
      keys: [{ id: 'k1', public_key: 'short' }, { id: 'k1', public_key: keys.public_key }, { id: 'bad id!', public_key: keys.public_key }, { id: 'k3' }],
      tokens: [
        { id: 't', sha256: 'A'.repeat(64), buckets: [], methods: ['DELETE'], prefix: 'b' },
        { id: 't', sha256: 'c'.repeat(64), buckets: ['media'], methods: ['GET'], extra: 1 },
      ],
      max_link_lifetime: '0',
    })
    for (const expected of [
      'auth.keys.0.public_key: public_key must be 32 bytes',
      'auth.keys.2.id: id must be letters',
      'auth.keys.3.public_key: required',
      'auth.tokens.0.sha256: sha256 must be 64 lowercase hex digits',
      'auth.tokens.0.buckets: list at least one bucket',
      'auth.tokens.0.methods.0:',
      'auth.tokens.0.prefix: prefix must end with "/"',
      'auth.tokens.1: unknown key "extra"',
      'auth.max_link_lifetime: not a duration',
    ]) {
      assert.ok(text.includes(expected), `missing "${expected}" in:\n${text}`)
    }
    // (zod checks a list as a whole only once every entry parses: duplicates on their own)
    assert.match(problems({ keys: [{ id: 'k1', public_key: keys.public_key }, { id: 'k1', public_key: other.public_key }] }), /auth\.keys\.1\.id: id "k1" is used twice/)
    assert.match(problems({ keys: [{ id: 'k1', public_key: keys.public_key }], private_key: other.private_key }), /private_key belongs to neither public_key nor any of keys/)
    assert.equal(problems({ keys: [{ id: 'k1', public_key: keys.public_key }], private_key: keys.private_key }), '')
    assert.match(problems({ tokens: [{ id: 'a', sha256: 'd'.repeat(64), buckets: ['*'], methods: ['GET'] }, { id: 'b', sha256: 'd'.repeat(64), buckets: ['*'], methods: ['GET'] }] }), /auth\.tokens\.1\.sha256: the same token is listed twice/)
    assert.match(problems({ tokens: [{ id: 'a', sha256: 'd'.repeat(64), buckets: ['media', 'meda'], methods: ['GET'] }] }), /auth\.tokens\.0\.buckets\.1: no store "meda"/)
    assert.match(problems({}), /set public_key or keys \(presigned links\), bearer_token or tokens/)
  })
})
