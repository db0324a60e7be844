import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { describe, it } from 'node:test'
import { createClientAddress, normalizeAddress, parseTrustedProxies } from '../src/http/client-address.ts'
import { presign } from '../src/auth/presign.ts'
import { validateConfig } from '../src/config/load.ts'
import { BEARER, startGateway } from './helpers/gateway.ts'

/** The two fields the lookup reads, as a real request carries them. */
function request(peer: string | undefined, forwarded?: string | string[]): IncomingMessage {
  return { socket: { remoteAddress: peer }, headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded } } as unknown as IncomingMessage
}

describe('client address behind trust_proxy', () => {
  it('is the peer when no proxy is trusted, whatever X-Forwarded-For says', () => {
    const of = createClientAddress([])
    assert.equal(of(request('203.0.113.9', '198.51.100.1')), '203.0.113.9')
    assert.equal(of(request('::ffff:203.0.113.9')), '203.0.113.9', 'IPv4-mapped peers are plain IPv4')
    assert.equal(of(request(undefined)), 'unknown')
  })

  it('takes the right-most untrusted X-Forwarded-For entry from a trusted peer', () => {
    const of = createClientAddress(['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'])
    assert.equal(of(request('10.1.1.1', '198.51.100.1')), '198.51.100.1')
    // The client wrote the left part itself: only the entry our balancer appended counts.
    assert.equal(of(request('10.1.1.1', '1.1.1.1, 198.51.100.1')), '198.51.100.1')
    assert.equal(of(request('10.1.1.1', '198.51.100.1, 10.2.2.2, 192.0.2.7')), '198.51.100.1', 'chains of trusted hops are skipped')
    assert.equal(of(request('10.1.1.1', ['198.51.100.1', '10.2.2.2'])), '198.51.100.1', 'repeated headers form one list')
    assert.equal(of(request('::ffff:10.1.1.1', '2001:db9::5')), '2001:db9::5')
    assert.equal(of(request('2001:db8::1', '[2001:db9::5]:443')), '2001:db9::5', 'ports are dropped')
    assert.equal(of(request('10.1.1.1', '198.51.100.1:8080')), '198.51.100.1')
  })

  it('never believes an untrusted peer or garbage from a trusted hop', () => {
    const of = createClientAddress(['10.0.0.0/8'])
    assert.equal(of(request('198.51.100.1', '10.9.9.9')), '198.51.100.1', 'an untrusted peer cannot claim an address')
    assert.equal(of(request('10.1.1.1')), '10.1.1.1', 'no header: the balancer itself')
    assert.equal(of(request('10.1.1.1', 'not-an-ip')), '10.1.1.1')
    assert.equal(of(request('10.1.1.1', '198.51.100.1, junk, 10.2.2.2')), '10.2.2.2', 'stops at the first entry that is no address')
    assert.equal(of(request('10.1.1.1', '10.3.3.3, 10.2.2.2')), '10.3.3.3', 'all trusted: the left-most')
    // A client can make the header as long as it likes: only its right end, where our hops
    // wrote, is read. (Falling back to the balancer's own address let a client pass as it:
    // a v2 link bound to the balancers' network, say, then held from anywhere.)
    assert.equal(of(request('10.1.1.1', `${'1.1.1.1,'.repeat(600)}198.51.100.1`)), '198.51.100.1', 'an oversized header: its right end is read')
    assert.equal(of(request('10.1.1.1', `${'x'.repeat(5000)}, 198.51.100.1, 10.2.2.2`)), '198.51.100.1', 'one oversized entry on the left is never read')
    assert.equal(of(request('10.1.1.1', `198.51.100.1, ${'10.2.2.2, '.repeat(600)}10.2.2.2`)), '10.2.2.2', 'all trusted as far as read: the left-most read')
    assert.equal(of(request('10.1.1.1', `${'1'.repeat(5000)}`)), '10.1.1.1', 'an oversized last entry is no address: the balancer')
  })

  it('parses addresses and CIDRs and names the bad entry', () => {
    assert.ok('list' in parseTrustedProxies(['10.0.0.1', '10.0.0.0/8', '::1', 'fd00::/8', '0.0.0.0/0']))
    for (const [entry, message] of [
      ['10.0.0.0/33', /prefix length must be 0–32/],
      ['fd00::/129', /prefix length must be 0–128/],
      ['example.com', /not an IP address or CIDR/],
      ['10.0.0.0/8/1', /not an IP address or CIDR/],
      ['10.0.0.0/x', /prefix length/],
    ] as const) {
      const parsed = parseTrustedProxies([entry])
      assert.ok('error' in parsed && message.test(parsed.error), entry)
    }
    assert.equal(normalizeAddress('::ffff:1.2.3.4'), '1.2.3.4')
    assert.equal(normalizeAddress('::ffff:abcd'), '::ffff:abcd')
  })

  it('is validated at start-up (YAML list or comma-separated environment value)', () => {
    const base = { auth: { bearer_token: BEARER }, stores: { a: { type: 'fs', root: '/tmp' } } }
    assert.deepEqual(validateConfig({ ...base, trust_proxy: ['10.0.0.0/8'] }).trust_proxy, ['10.0.0.0/8'])
    assert.deepEqual(validateConfig({ ...base, trust_proxy: '10.0.0.1, 10.0.0.2' }).trust_proxy, ['10.0.0.1', '10.0.0.2'])
    assert.deepEqual(validateConfig(base).trust_proxy, [])
    assert.throws(() => validateConfig({ ...base, trust_proxy: ['10.0.0.0/8', 'nginx'] }), /trust_proxy\.1: "nginx" is not an IP address or CIDR/)
  })

  it('a link bound to the balancers\' network is not usable from outside by sending a long X-Forwarded-For', async () => {
    // Loopback is the balancer; the link is for clients on loopback only.
    const gateway = await startGateway({ raw: { trust_proxy: ['127.0.0.1'] } })
    try {
      await fetch(`${gateway.url}/local/inside.txt`, { method: 'PUT', body: 'inside', headers: { authorization: `Bearer ${BEARER}` } })
      const url = presign({ baseUrl: gateway.url, bucket: 'local', path: 'inside.txt', ip: '127.0.0.0/8', privateKey: gateway.keys.private_key })
      const from = (forwarded: string) => fetch(url, { headers: { 'x-forwarded-for': forwarded } }).then((r) => r.status)
      assert.equal(await from('127.0.0.9'), 200)
      assert.equal(await from('198.51.100.1'), 403)
      // The outside client puts 5 KB in front of what the balancer appends (its address).
      assert.equal(await from(`${'x'.repeat(5000)}, 198.51.100.1`), 403)
    } finally {
      await gateway.close()
    }
  })

  it('keys the failed-auth limiter by the forwarded client behind a trusted proxy', async () => {
    // Loopback is the balancer here: each forwarded client has its own bucket.
    const gateway = await startGateway({ raw: { trust_proxy: ['127.0.0.1'], limits: { failed_auth_per_second: 1, failed_auth_burst: 2 } } })
    try {
      const bad = (client: string) => fetch(`${gateway.url}/local/x?sig=AAAA.AAAA`, { headers: { 'x-forwarded-for': client } }).then((r) => r.status)
      assert.deepEqual([await bad('198.51.100.1'), await bad('198.51.100.1'), await bad('198.51.100.1')], [401, 401, 429])
      assert.equal(await bad('198.51.100.2'), 401, 'another client behind the same balancer still gets verified')
    } finally {
      await gateway.close()
    }
  })
})
