/**
 * Errors a person can read (issue 11 §4): `Accept` negotiation with q-values, the page's
 * wording and escaping, and end to end: a link opened in a tab gets HTML, an API client
 * keeps JSON, same status and headers either way, and no query string or secret is echoed.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { presign } from '../src/auth/presign.ts'
import { AuthError } from '../src/errors.ts'
import { prefersHtml } from '../src/http/accept.ts'
import { describeError, escapeHtml, renderErrorPage } from '../src/http/error-page.ts'
import { toHttpError } from '../src/http/errors.ts'
import { BEARER, type TestGateway, rawRequest, startGateway } from './helpers/gateway.ts'

const CHROME_NAVIGATION = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7'
const FIREFOX_NAVIGATION = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'

describe('Accept negotiation', () => {
  const cases: [string | undefined, boolean][] = [
    [CHROME_NAVIGATION, true],
    [FIREFOX_NAVIGATION, true],
    ['text/html', true],
    ['TEXT/HTML', true],
    ['text/*', true],
    ['text/html;q=0.5, application/json;q=0.4', true],
    [undefined, false],
    ['', false],
    ['*/*', false],
    ['application/json', false],
    ['application/json, text/html', false],
    ['text/html, application/json', false],
    ['text/html;q=0.5, application/json', false],
    ['text/html;q=0', false],
    ['text/html;q=0, */*', false],
    ['text/*;q=0.9, text/html;q=0', false],
    ['text/html, application/*;q=1', false],
    ['image/avif,image/webp,*/*;q=0.8', false],
    ['text/html;q=2', false],
    ['text/html;q=abc', false],
    ['text/html;q=0.1234', false],
    ['text/html;level=1;q=0.9, application/json;q=0.5', true],
    ['text/html ; q=0.9 , application/json ; q=0.8', true],
  ]
  for (const [accept, expected] of cases) {
    it(`${JSON.stringify(accept)} → ${expected ? 'HTML' : 'JSON'}`, () => assert.equal(prefersHtml(accept), expected))
  }
})

describe('the page', () => {
  it('says when an expired link expired', () => {
    const { sentence } = describeError(toHttpError(new AuthError('expired', 'expired at 2026-03-04T05:06:07.000Z')))
    assert.equal(sentence, 'This link expired at 2026-03-04 05:06:07 UTC.')
  })
  it('says a link for another file is not valid for this file', () => {
    assert.equal(describeError(toHttpError(new AuthError('path mismatch'))).sentence, 'This link is not valid for this file.')
    assert.equal(describeError(toHttpError(new AuthError('bucket mismatch'))).sentence, 'This link is not valid for this file.')
  })
  it('never shows an AuthError detail it does not know (it may name the credential)', () => {
    const page = renderErrorPage(toHttpError(new AuthError('some new reason', 'token abc123secret is revoked')))
    assert.match(page, /This link or access token was not accepted\./)
    assert.doesNotMatch(page, /abc123secret/)
  })
  it('escapes everything it shows', () => {
    assert.equal(escapeHtml(`<a href="x" onclick='y'>&</a>`), '&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;')
    const page = renderErrorPage({ status: 400, error: 'bad <request>', message: '<script>alert("x")</script>' })
    assert.doesNotMatch(page, /<script/)
    assert.match(page, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;/)
    assert.match(page, /bad &lt;request&gt;/)
  })
})

describe('error pages from the gateway', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ raw: { cors: { allowed_origins: ['https://app.example.com'] } } })
    await writeFile(path.join(gw.root, 'a.txt'), 'hello')
  })
  after(() => gw.close())
  const link = (options: { path?: string; now?: number } = {}) =>
    presign({ baseUrl: gw.url, bucket: 'local', path: options.path ?? 'a.txt', privateKey: gw.keys.private_key, expiresIn: 60, now: options.now }).slice(gw.url.length)

  it('an expired link opened in a tab: 401 page saying when, headers as for JSON, no signature echoed', async () => {
    const now = Date.UTC(2026, 0, 2, 3, 4, 5)
    const target = link({ now })
    const sig = new URLSearchParams(target.split('?')[1]).get('sig')!
    const page = await rawRequest(gw.url, 'GET', target, { Accept: CHROME_NAVIGATION, Origin: 'https://app.example.com' })
    const json = await rawRequest(gw.url, 'GET', target, { Accept: '*/*', Origin: 'https://app.example.com' })
    assert.equal(page.status, 401)
    assert.equal(json.status, 401)
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8')
    assert.equal(page.headers['content-security-policy'], "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    assert.equal(page.headers['x-content-type-options'], 'nosniff')
    assert.equal(page.headers['referrer-policy'], 'no-referrer')
    assert.equal(page.headers['www-authenticate'], json.headers['www-authenticate'])
    assert.equal(page.headers['access-control-allow-origin'], 'https://app.example.com')
    assert.equal(Number(page.headers['content-length']), page.body.length)
    const html = page.body.toString()
    assert.match(html, /This link expired at 2026-01-02 03:05:05 UTC\./)
    assert.ok(!html.includes(sig) && !html.includes(sig.slice(0, 20)) && !html.includes('sig='))
    assert.equal(json.headers['content-type'], 'application/json; charset=utf-8')
    assert.deepEqual(JSON.parse(json.body.toString()), { error: 'unauthorized', message: 'expired' })
  })

  it('a link for another file: "not valid for this file"', async () => {
    const target = link({ path: 'other.txt' }).replace('/other.txt', '/a.txt')
    const res = await rawRequest(gw.url, 'GET', target, { Accept: FIREFOX_NAVIGATION })
    assert.equal(res.status, 401)
    assert.match(res.body.toString(), /This link is not valid for this file\./)
  })

  it('404, 400 and 403 pages; HEAD gets the headers only', async () => {
    const auth = { Authorization: `Bearer ${BEARER}`, Accept: 'text/html' }
    const missing = await rawRequest(gw.url, 'GET', '/local/%3Cb%3Emissing.txt', auth)
    assert.equal(missing.status, 404)
    assert.match(missing.body.toString(), /There is no file at this address\./)
    assert.doesNotMatch(missing.body.toString(), /<b>/)
    const bad = await rawRequest(gw.url, 'GET', '/local/%2e%2e/x?sig=secret-value', auth)
    assert.equal(bad.status, 400)
    assert.doesNotMatch(bad.body.toString(), /secret-value/)
    const refused = await rawRequest(gw.url, 'OPTIONS', '/local/a.txt', { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'GET', Accept: 'text/html' })
    assert.equal(refused.status, 403)
    assert.match(refused.headers['content-type']!, /^text\/html/)
    const head = await rawRequest(gw.url, 'HEAD', '/local/missing.txt', auth)
    assert.equal(head.status, 404)
    assert.match(head.headers['content-type']!, /^text\/html/)
    assert.equal(head.body.length, 0)
  })

  it('an API client keeps JSON: no Accept, */*, or JSON preferred', async () => {
    for (const accept of [undefined, '*/*', 'application/json', 'text/html;q=0.5, application/json']) {
      const res = await rawRequest(gw.url, 'GET', '/local/a.txt', accept === undefined ? {} : { Accept: accept })
      assert.equal(res.status, 401)
      assert.equal(res.headers['content-type'], 'application/json; charset=utf-8', String(accept))
    }
  })
})
