import assert from 'node:assert/strict'
import { createPrivateKey, sign as nodeSign } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createVerifier, decodeBase64Url, generateKeyPair, verify } from '../src/auth/keys.ts'
import { createAuthenticator } from '../src/auth/middleware.ts'
import { encodeKeyPath, presign, signPayload, verifyPresigned } from '../src/auth/presign.ts'
import { BEARER, type TestGateway, rawRequest, startGateway, tempDir } from './helpers/gateway.ts'

const L = 2n ** 252n + 27742317777372353535851937790883648493n
const b64 = (bytes: Uint8Array | Buffer) => Buffer.from(bytes).toString('base64url')
const json = (value: unknown) => b64(Buffer.from(JSON.stringify(value)))

/** Signs with node:crypto (OpenSSL), a different Ed25519 implementation from ours. */
function opensslSig(payload: object, privateKey: string): string {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(privateKey, 'base64url')])
  const key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
  const bytes = Buffer.from(JSON.stringify(payload))
  return `${b64(bytes)}.${b64(nodeSign(null, bytes, key))}`
}

/** Same signature with S replaced by S + L: still verifies under lax (non-RFC 8032) checks. */
function malleate(sig: string): string {
  const [payload, signature] = sig.split('.') as [string, string]
  const bytes = Buffer.from(signature, 'base64url')
  let s = 0n
  for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(bytes[i]!)
  s += L
  for (let i = 32; i < 64; i++) {
    bytes[i] = Number(s & 0xffn)
    s >>= 8n
  }
  return `${payload}.${b64(bytes)}`
}

describe('auth on object routes', () => {
  let gw: TestGateway
  let noBearer: TestGateway
  const now = () => Math.floor(Date.now() / 1000)
  const payload = (over: Record<string, unknown> = {}) => ({ v: 1, exp: now() + 600, m: 'GET', b: 'local', p: 'a.txt', ...over })

  before(async () => {
    const root = await tempDir()
    await writeFile(path.join(root, 'a.txt'), 'alpha')
    await mkdir(path.join(root, 'dir'))
    await writeFile(path.join(root, 'dir', 'b c ü.txt'), 'beta')
    gw = await startGateway({ root, raw: { stores: { local: { type: 'fs', root }, other: { type: 'fs', root } } } })
    const keys = generateKeyPair()
    noBearer = await startGateway({ root, raw: { auth: keys } })
  })
  after(async () => {
    await gw.close()
    await noBearer.close()
  })

  const sigOf = (p: object) => signPayload(p as never, gw.keys.private_key)
  type Case = { name: string; method?: string; target: () => string; headers?: () => Record<string, string>; body?: string; status: number; reason?: string; server?: () => TestGateway }
  const q = (sig: string, p = 'a.txt', bucket = 'local') => `/${bucket}/${encodeKeyPath(p)}?sig=${sig}`
  const cases: Case[] = [
    { name: 'valid presigned GET', target: () => q(sigOf(payload())), status: 200 },
    { name: 'valid presigned HEAD', method: 'HEAD', target: () => q(sigOf(payload({ m: 'HEAD' }))), status: 200 },
    { name: 'valid presigned PUT', method: 'PUT', body: 'put-by-link', target: () => q(sigOf(payload({ m: 'PUT', p: 'new.txt' })), 'new.txt'), status: 200 },
    { name: 'valid presigned GET of an encoded unicode key', target: () => q(sigOf(payload({ p: 'dir/b c ü.txt' })), 'dir/b c ü.txt'), status: 200 },
    { name: 'signed by another Ed25519 implementation (OpenSSL)', target: () => q(opensslSig(payload(), gw.keys.private_key)), status: 200 },
    { name: 'expired', target: () => q(sigOf(payload({ exp: now() - 1 }))), status: 401, reason: 'expired' },
    { name: 'tampered payload', target: () => q(`${json(payload({ exp: now() + 99999 }))}.${sigOf(payload()).split('.')[1]}`), status: 401, reason: 'bad signature' },
    {
      name: 'tampered signature',
      target: () => {
        const [p, s] = sigOf(payload()).split('.') as [string, string]
        const bytes = Buffer.from(s, 'base64url')
        bytes[5]! ^= 1
        return q(`${p}.${b64(bytes)}`)
      },
      status: 401,
      reason: 'bad signature',
    },
    { name: 'swapped bucket', target: () => q(sigOf(payload({ b: 'other' }))), status: 401, reason: 'bucket mismatch' },
    { name: 'link for one bucket used on another', target: () => q(sigOf(payload()), 'a.txt', 'other'), status: 401, reason: 'bucket mismatch' },
    { name: 'swapped path', target: () => q(sigOf(payload({ p: 'dir/b c ü.txt' }))), status: 401, reason: 'path mismatch' },
    { name: 'wrong method (GET link used for PUT)', method: 'PUT', body: 'x', target: () => q(sigOf(payload())), status: 401, reason: 'method mismatch' },
    { name: 'wrong method (GET link used for HEAD)', method: 'HEAD', target: () => q(sigOf(payload())), status: 401, reason: 'method mismatch' },
    { name: 'non-canonical signature (S + L)', target: () => q(malleate(sigOf(payload()))), status: 401, reason: 'bad signature' },
    { name: 'signed with a different key', target: () => q(signPayload(payload() as never, generateKeyPair().private_key)), status: 401, reason: 'bad signature' },
    { name: 'bad base64 (padding)', target: () => q(`${sigOf(payload()).replace('.', '=.')}`), status: 401, reason: 'malformed signature' },
    { name: 'bad base64 (invalid characters)', target: () => q(sigOf(payload()).replace(/^./, '*')), status: 401, reason: 'malformed signature' },
    { name: 'missing signature part', target: () => q(sigOf(payload()).split('.')[0]!), status: 401, reason: 'malformed signature' },
    { name: 'missing payload part', target: () => q(`.${sigOf(payload()).split('.')[1]}`), status: 401, reason: 'malformed signature' },
    { name: 'empty sig', target: () => q(''), status: 401, reason: 'malformed signature' },
    { name: 'two sig parameters', target: () => `${q(sigOf(payload()))}&sig=${sigOf(payload())}`, status: 401, reason: 'malformed signature' },
    // Version 2 is ours now (test/auth-links-v2.test.ts); 3 is nobody's.
    { name: 'unsupported payload version', target: () => q(sigOf(payload({ v: 3 }))), status: 401, reason: 'unsupported version' },
    { name: 'a v1-shaped payload with v: 2 is a valid v2 link', target: () => q(sigOf(payload({ v: 2 }))), status: 200 },
    { name: 'valid bearer GET', target: () => '/local/a.txt', headers: () => ({ Authorization: `Bearer ${BEARER}` }), status: 200 },
    { name: 'valid bearer PUT', method: 'PUT', body: 'by bearer', target: () => '/local/bearer.txt', headers: () => ({ Authorization: `Bearer ${BEARER}` }), status: 200 },
    { name: 'wrong bearer', target: () => '/local/a.txt', headers: () => ({ Authorization: `Bearer ${BEARER}x` }), status: 401, reason: 'bad token' },
    { name: 'bearer prefix of the token', target: () => '/local/a.txt', headers: () => ({ Authorization: `Bearer ${BEARER.slice(0, -1)}` }), status: 401, reason: 'bad token' },
    { name: 'not a bearer scheme', target: () => '/local/a.txt', headers: () => ({ Authorization: `Basic ${b64(Buffer.from('u:p'))}` }), status: 401, reason: 'malformed authorization' },
    { name: 'no credentials at all', target: () => '/local/a.txt', status: 401, reason: 'missing credentials' },
    { name: 'bearer when none is configured', server: () => noBearer, target: () => '/local/a.txt', headers: () => ({ Authorization: `Bearer ${BEARER}` }), status: 401, reason: 'bearer tokens not enabled' },
  ]
  assert.ok(cases.length >= 15)

  for (const c of cases) {
    it(c.name, async () => {
      const server = c.server?.() ?? gw
      const res = await rawRequest(server.url, c.method ?? 'GET', c.target(), c.headers?.() ?? {}, c.body)
      assert.equal(res.status, c.status, res.body.toString())
      if (c.status === 401) {
        assert.match(String(res.headers['www-authenticate']), /^Bearer realm="cachegate"/)
        if (c.method !== 'HEAD') assert.equal(JSON.parse(res.body.toString()).message, c.reason)
        assert.ok(!res.body.toString().includes(BEARER), 'the token never appears in a response')
      }
    })
  }

  it('a PUT through a presigned link lands in the store', async () => {
    assert.equal(await readFile(path.join(gw.root, 'new.txt'), 'utf8'), 'put-by-link')
  })

  it('presign() URLs verify against a running server, with the sample bytes', async () => {
    const url = presign({ baseUrl: gw.url, bucket: 'local', path: 'dir/b c ü.txt', privateKey: gw.keys.private_key })
    const res = await fetch(url)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'beta')
  })

  it('auth failures are counted in /stats', async () => {
    const stats = (await (await fetch(`${gw.url}/stats`)).json()) as { auth_failures: number }
    assert.ok(stats.auth_failures >= cases.filter((c) => c.status === 401 && !c.server).length)
  })
})

describe('signature verification', () => {
  it('rejects the small-order (identity) key that lax ZIP-215 verification accepts for any message', () => {
    const identity = new Uint8Array(32)
    identity[0] = 1
    const signature = new Uint8Array(64)
    signature.set(identity, 0) // R = identity, S = 0: valid for every message under ZIP-215
    assert.equal(verify(signature, new TextEncoder().encode('anything'), identity), false)
  })

  it('accepts a link signed with a previous (rotated) key only when configured', () => {
    const oldKeys = generateKeyPair()
    const newKeys = generateKeyPair()
    const sig = signPayload({ v: 1, exp: 2_000_000_000, m: 'GET', b: 'x', p: 'k' }, oldKeys.private_key)
    const request = { method: 'GET', bucket: 'x', path: 'k' }
    const key = (k: string) => createVerifier(decodeBase64Url(k)!)
    assert.throws(() => verifyPresigned(sig, request, [key(newKeys.public_key)], 0), /bad signature/)
    assert.equal(verifyPresigned(sig, request, [key(newKeys.public_key), key(oldKeys.public_key)], 0).p, 'k')
  })

  it('a verified sig is remembered, but expiry, method, bucket and path are checked every time', () => {
    const keys = generateKeyPair()
    let clock = 1_000_000_000
    const authenticate = createAuthenticator({ publicKey: keys.public_key, now: () => clock })
    const sig = signPayload({ v: 1, exp: 1_000_100, m: 'GET', b: 'b', p: 'k' }, keys.private_key)
    const request = { method: 'GET', bucket: 'b', key: 'k', sig }
    assert.equal(authenticate(request).kind, 'presigned')
    assert.equal(authenticate(request).kind, 'presigned') // from the cache
    const reason = (expected: string) => (error: unknown) => (error as { reason?: string }).reason === expected
    assert.throws(() => authenticate({ ...request, method: 'PUT' }), reason('method mismatch'))
    assert.throws(() => authenticate({ ...request, key: 'other' }), reason('path mismatch'))
    assert.throws(() => authenticate({ ...request, bucket: 'c' }), reason('bucket mismatch'))
    clock = 1_000_100_000
    assert.throws(() => authenticate(request), reason('expired'))
    // A failure is never cached as a success: the malleated twin of a good sig keeps failing.
    clock = 1_000_000_000
    const twin = malleate(sig)
    assert.throws(() => authenticate({ ...request, sig: twin }), reason('bad signature'))
    assert.throws(() => authenticate({ ...request, sig: twin }), reason('bad signature'))
  })

  it('OpenSSL-backed verification agrees with noble’s strict verify, including S + L', () => {
    const keys = generateKeyPair()
    const check = createVerifier(decodeBase64Url(keys.public_key)!)
    const message = new TextEncoder().encode('payload')
    const good = signPayload({ v: 1, exp: 1, m: 'GET', b: 'b', p: 'p' }, keys.private_key)
    const [payload, signature] = good.split('.') as [string, string]
    const bytes = decodeBase64Url(payload)!
    const sigBytes = decodeBase64Url(signature)!
    assert.equal(check(sigBytes, bytes), true)
    assert.equal(verify(sigBytes, bytes, decodeBase64Url(keys.public_key)!), true)
    const malleated = decodeBase64Url(malleate(good).split('.')[1]!)!
    assert.equal(check(malleated, bytes), false)
    assert.equal(verify(malleated, bytes, decodeBase64Url(keys.public_key)!), false)
    assert.equal(check(sigBytes, message), false)
    const identity = new Uint8Array(32)
    identity[0] = 1
    assert.throws(() => createVerifier(identity), /not a usable Ed25519 public key/)
  })

  it('the presign payload is Cachegate’s wire format', () => {
    const url = new URL(presign({ baseUrl: 'http://h', bucket: 'media', path: 'a b/c.jpg', privateKey: generateKeyPair().private_key, now: 1_000_000, expiresIn: 60 }))
    assert.equal(url.pathname, '/media/a%20b/c.jpg')
    const [payload] = url.searchParams.get('sig')!.split('.') as [string]
    assert.deepEqual(JSON.parse(Buffer.from(payload, 'base64url').toString()), { v: 1, exp: 1060, m: 'GET', b: 'media', p: 'a b/c.jpg' })
  })
})
