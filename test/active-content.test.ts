/**
 * Objects a browser would run as a document with script (HTML, SVG, XML) are sandboxed:
 * an upload link must not become a script on the gateway's origin.
 */
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { presign } from '../src/auth/presign.ts'
import { isActiveContentType } from '../src/content-type.ts'
import { BEARER, type TestGateway, rawRequest, startGateway } from './helpers/gateway.ts'

const auth = { Authorization: `Bearer ${BEARER}` }

describe('active content is served with Content-Security-Policy: sandbox', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  // key, Content-Type sent on PUT (none: from the extension), sandboxed?
  const objects: [string, string | undefined, boolean][] = [
    ['page.html', undefined, true],
    ['logo.svg', undefined, true],
    ['doc.xhtml', undefined, true],
    ['feed.bin', 'Application/Atom+XML; charset=utf-8', true],
    ['data.bin', 'TEXT/XML', true],
    ['plain.xml', 'application/xml;charset=utf-8', true],
    ['photo.png', undefined, false],
    ['notes.txt', 'text/plain; charset=utf-8', false],
    ['blob.bin', 'application/octet-stream', false],
  ]

  for (const [key, contentType, sandboxed] of objects) {
    it(`${key} (${contentType ?? 'type from its name'}): ${sandboxed ? 'sandboxed' : 'no CSP'} on every object response`, async () => {
      const body = key.endsWith('.png') ? Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex') : '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
      const put = await rawRequest(gw.url, 'PUT', `/local/${key}`, { ...auth, ...(contentType ? { 'Content-Type': contentType } : {}) }, body)
      assert.equal(put.status, 200, put.body.toString())
      const signed = new URL(presign({ baseUrl: gw.url, bucket: 'local', path: key, privateKey: gw.keys.private_key }))
      const responses = [
        await rawRequest(gw.url, 'GET', `/local/${key}`, auth), // after the PUT
        await rawRequest(gw.url, 'GET', `/local/${key}`, auth), // a memory hit (bearer headers cached per object)
        await rawRequest(gw.url, 'GET', `/local/${key}`, { ...auth, Range: 'bytes=0-3' }),
        await rawRequest(gw.url, 'HEAD', `/local/${key}`, auth),
        await rawRequest(gw.url, 'GET', `${signed.pathname}${signed.search}`),
      ]
      for (const res of responses) {
        assert.ok(res.status === 200 || res.status === 206, `${res.status} ${res.body.toString()}`)
        assert.equal(res.headers['x-content-type-options'], 'nosniff')
        assert.equal(res.headers['content-security-policy'], sandboxed ? 'sandbox' : undefined, `Content-Type ${res.headers['content-type']}`)
      }
    })
  }

  it('isActiveContentType: parameters off, case-insensitive, every +xml type', () => {
    for (const type of ['text/html', 'Text/HTML; charset=utf-8', ' text/html ', 'image/svg+xml', 'application/xhtml+xml', 'text/xml', 'application/xml', 'application/rss+xml', 'application/vnd.foo+XML;x=y']) {
      assert.ok(isActiveContentType(type), type)
    }
    for (const type of ['text/plain', 'image/png', 'application/json', 'application/octet-stream', 'text/htmlx', 'application/xml-dtd', 'text/css', '']) {
      assert.ok(!isActiveContentType(type), type)
    }
  })
})
