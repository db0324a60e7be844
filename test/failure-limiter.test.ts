import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { FailureLimiter, clientKey } from '../src/auth/failure-limiter.ts'
import { generateKeyPair } from '../src/auth/keys.ts'
import { createAuthenticator } from '../src/auth/middleware.ts'
import { signPayload } from '../src/auth/presign.ts'
import { AuthError, AuthRateLimitedError } from '../src/errors.ts'
import { BEARER, type TestGateway, rawRequest, startGateway, tempDir } from './helpers/gateway.ts'

/** A clock the test moves by hand. */
function manualClock() {
  let t = 1_000
  return { now: () => t, advance: (ms: number) => void (t += ms) }
}

describe('FailureLimiter (token bucket, injected clock)', () => {
  it('refuses once the burst is spent, says when to retry, and refills', () => {
    const clock = manualClock()
    const limiter = new FailureLimiter({ perSecond: 2, burst: 3, now: clock.now })
    assert.equal(limiter.retryAfter('a'), 0)
    assert.equal(limiter.size, 0, 'checking creates no bucket')
    assert.equal(limiter.fail('a'), false)
    assert.equal(limiter.fail('a'), false)
    assert.equal(limiter.retryAfter('a'), 0)
    assert.equal(limiter.fail('a'), true, 'the failure that empties the bucket is reported once')
    assert.equal(limiter.retryAfter('a'), 1)
    assert.equal(limiter.fail('a'), false, 'already empty')
    assert.equal(limiter.retryAfter('b'), 0, 'another client is not affected')
    clock.advance(499)
    assert.equal(limiter.retryAfter('a'), 1)
    clock.advance(1)
    assert.equal(limiter.retryAfter('a'), 0, 'one token back after 1/perSecond')
    clock.advance(60_000)
    for (let i = 0; i < 3; i++) limiter.fail('a')
    assert.equal(limiter.retryAfter('a'), 1, 'refill is capped at the burst')
  })

  it('rounds Retry-After up to whole seconds for slow rates', () => {
    const clock = manualClock()
    const limiter = new FailureLimiter({ perSecond: 0.2, burst: 1, now: clock.now })
    limiter.fail('a')
    assert.equal(limiter.retryAfter('a'), 5)
    clock.advance(4001)
    assert.equal(limiter.retryAfter('a'), 1)
  })

  it('keeps at most maxClients buckets', () => {
    const limiter = new FailureLimiter({ perSecond: 1, burst: 1, maxClients: 100 })
    for (let i = 0; i < 1000; i++) limiter.fail(`10.0.${i >> 8}.${i & 255}`)
    assert.equal(limiter.size, 100)
  })

  it('refuses bad options when built', () => {
    assert.throws(() => new FailureLimiter({ perSecond: 0, burst: 1 }), TypeError)
    assert.throws(() => new FailureLimiter({ perSecond: 1, burst: 0.5 }), TypeError)
  })

  it('counts an IPv6 client by its /64 and unwraps IPv4-mapped addresses', () => {
    assert.equal(clientKey('127.0.0.1'), '127.0.0.1')
    assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7')
    assert.equal(clientKey('2001:db8:1:2:aaaa:bbbb:cccc:1'), '2001:db8:1:2::/64')
    assert.equal(clientKey('2001:0db8:0001:0002::ffff'), '2001:db8:1:2::/64')
    assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64')
    assert.equal(clientKey('::1'), '0:0:0:0::/64')
    assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64')
    assert.notEqual(clientKey('2001:db8:1:3::1'), clientKey('2001:db8:1:2::1'))
    assert.equal(clientKey(undefined), 'unknown')
  })
})

describe('authenticator with a failure limiter', () => {
  const keys = generateKeyPair()
  // A new expiry each time, so no two links are the same string (Ed25519 is deterministic).
  let n = 0
  const exp = () => Math.floor(Date.now() / 1000) + 600 + n++
  const link = (p: string) => signPayload({ v: 1, exp: exp(), m: 'GET', b: 'b', p } as never, keys.private_key)
  const bad = (p: string) => `${link(p).split('.')[0]}.${Buffer.alloc(64, 7).toString('base64url')}`

  it('stops verifying for an address whose bucket is empty; bearer and verified links still pass', () => {
    const clock = manualClock()
    const limited: string[] = []
    const authenticate = createAuthenticator({
      publicKey: keys.public_key,
      bearerToken: BEARER,
      limiter: new FailureLimiter({ perSecond: 1, burst: 2, now: clock.now }),
      onLimited: (client) => limited.push(client),
    })
    const from = (client: string, over: { sig?: string; authorization?: string }) => () => authenticate({ method: 'GET', bucket: 'b', key: 'k', client: () => client, ...over })
    const reused = link('k')
    from('10.0.0.1', { sig: reused })()
    assert.throws(from('10.0.0.1', { sig: bad('k') }), AuthError)
    assert.throws(from('10.0.0.1', { sig: bad('k') }), AuthError)
    assert.deepEqual(limited, ['10.0.0.1'])
    // A valid link not verified before is refused unverified: the bucket decides, not the signature.
    assert.throws(from('10.0.0.1', { sig: link('k') }), (e: unknown) => e instanceof AuthRateLimitedError && e.retryAfterSeconds === 1)
    assert.throws(from('10.0.0.1', { sig: 'garbage' }), AuthRateLimitedError)
    assert.deepEqual(from('10.0.0.1', { authorization: `Bearer ${BEARER}` })(), { kind: 'bearer' })
    assert.equal(from('10.0.0.1', { sig: reused })().kind, 'presigned')
    assert.equal(from('10.0.0.2', { sig: link('k') })().kind, 'presigned', 'other addresses are unaffected')
    clock.advance(1000)
    assert.equal(from('10.0.0.1', { sig: link('k') })().kind, 'presigned', 'refilled')
  })
})

describe('failed-auth limit on a running gateway', () => {
  let gw: TestGateway
  let unlimited: TestGateway
  const badSig = (gateway: TestGateway, i: number) => {
    const good = signPayload({ v: 1, exp: Math.floor(Date.now() / 1000) + 600, m: 'GET', b: 'local', p: `a.txt` } as never, gateway.keys.private_key)
    const signature = Buffer.from(good.split('.')[1]!, 'base64url')
    signature[i % 32]! ^= 1
    return `${good.split('.')[0]}.${signature.toString('base64url')}`
  }

  before(async () => {
    const root = await tempDir()
    await writeFile(path.join(root, 'a.txt'), 'alpha')
    gw = await startGateway({ root, raw: { limits: { failed_auth_burst: 5, failed_auth_per_second: 1 } } })
    unlimited = await startGateway({ root, raw: { limits: { failed_auth_per_second: 0 } } })
  })
  after(async () => {
    await gw.close()
    await unlimited.close()
  })

  it('answers the 6th bad signature from 127.0.0.1 with 429 and Retry-After; a bearer request still succeeds', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await rawRequest(gw.url, 'GET', `/local/a.txt?sig=${badSig(gw, i)}`)).status, 401, `bad signature ${i + 1}`)
    const sixth = await rawRequest(gw.url, 'GET', `/local/a.txt?sig=${badSig(gw, 5)}`)
    assert.equal(sixth.status, 429)
    assert.match(String(sixth.headers['retry-after']), /^[1-9]\d*$/)
    assert.equal(JSON.parse(sixth.body.toString()).error, 'too many requests')
    const bearer = await rawRequest(gw.url, 'GET', '/local/a.txt', { Authorization: `Bearer ${BEARER}` })
    assert.equal(bearer.status, 200)
    assert.equal(bearer.body.toString(), 'alpha')
    const metrics = (await rawRequest(gw.url, 'GET', '/metrics')).body.toString()
    assert.match(metrics, /cachegate_auth_failures_total\{reason="rate limited"\} 1\b/)
  })

  it('does not limit with failed_auth_per_second: 0', async () => {
    for (let i = 0; i < 120; i++) {
      assert.equal((await rawRequest(unlimited.url, 'GET', `/local/a.txt?sig=${badSig(unlimited, i)}`)).status, 401, `bad signature ${i + 1}`)
    }
  })
})
