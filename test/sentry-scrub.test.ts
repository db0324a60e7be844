/** The Sentry scrubber on the shapes the SDK sends: request data, span data, breadcrumbs. */
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { scrubEvent, scrubString } from '../src/sentry.ts'

it('removes queries, credentials and secret headers wherever they appear', () => {
  const event = scrubEvent({
    message: 'GET /media/a.jpg?sig=abc.def failed with Bearer tok-123456',
    request: {
      method: 'GET',
      url: 'https://gw.example/media/a.jpg?sig=abc.def',
      query_string: 'sig=abc.def',
      cookies: { session: 'c00kie' },
      data: 'body',
      headers: { Authorization: 'Bearer tok-123456', 'X-Amz-Security-Token': 'amz', cookie: 'c00kie', 'user-agent': 'curl/8' },
    },
    breadcrumbs: [{ category: 'http', data: { url: 'https://s3.example/b/k?X-Amz-Signature=f00', 'http.query': 'X-Amz-Signature=f00' }, message: 'PUT https://s3.example/b/k?X-Amz-Credential=AKIA/x' }],
    spans: [{ description: 'GET /media/a.jpg?sig=abc.def', data: { 'url.query': '?sig=abc.def', 'http.url': 'http://gw/media/a.jpg?sig=abc.def' } }],
    extra: { note: 'token=xyz and sig=abc.def outside a url' },
  })
  const text = JSON.stringify(event)
  for (const secret of ['abc.def', 'tok-123456', 'c00kie', '"amz"', 'f00', 'AKIA', 'xyz']) assert.ok(!text.includes(secret), `${secret} in ${text}`)
  assert.equal(event.request.url, 'https://gw.example/media/a.jpg')
  assert.equal(event.request.headers['user-agent'], 'curl/8')
  assert.equal(event.request.headers.Authorization, '[Filtered]')
  assert.equal(event.spans[0]!.description, 'GET /media/a.jpg')
  assert.equal(event.request.method, 'GET')
  assert.equal(scrubString('no secrets here: /a/b.txt'), 'no secrets here: /a/b.txt')
})
