/**
 * The object routes' synchronous hooks (issue 10 §4; CORS, issue 11, is their first user):
 * `decorate` reaches every object response, errors included, and `beforeAuth` can answer
 * a request (a preflight OPTIONS) before the 405 and before auth.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { UpstreamError } from '../src/errors.ts'
import type { ObjectHooks } from '../src/http/object/index.ts'
import { createFsStore } from '../src/stores/fs.ts'
import type { Store } from '../src/stores/types.ts'
import { BEARER, type TestGateway, rawRequest, startGateway, tempDir } from './helpers/gateway.ts'

const auth = { Authorization: `Bearer ${BEARER}` }

/** A store whose every call fails as a refused connection would (→ 502). */
function downStore(id: string): Store {
  const refuse = async (): Promise<never> => {
    throw new UpstreamError(id, 'connect', 'connection refused')
  }
  return { type: 'fs', id, head: refuse, get: refuse, put: refuse }
}

describe('object hooks', () => {
  let gw: TestGateway
  const seen: { method: string | undefined; target: string }[] = []
  const hooks: ObjectHooks = {
    beforeAuth(incoming, outgoing, target) {
      if (incoming.method !== 'OPTIONS' || incoming.headers['x-answer-preflight'] === undefined) return false
      outgoing.writeHead(204, { 'X-Preflight': `${target.bucket}/${target.key}` }).end()
      return true
    },
    decorate(incoming, headers, target) {
      seen.push({ method: incoming.method, target: target ? `${target.bucket}/${target.key}` : '-' })
      headers.setHeader('X-Decorated', target ? target.bucket : 'no-target')
      headers.appendHeader('Vary', 'Origin')
    },
  }

  before(async () => {
    const root = await tempDir()
    await writeFile(path.join(root, 'a.txt'), 'hello world')
    const stores = new Map<string, Store>([
      ['local', createFsStore({ id: 'local', root })],
      ['down', downStore('down')],
    ])
    gw = await startGateway({ root, stores, objectHooks: hooks })
    // Warm the memory tier: the hooks must also reach the synchronous memory-hit path.
    assert.equal((await rawRequest(gw.url, 'GET', '/local/a.txt', auth)).status, 200)
  })
  after(() => gw.close())

  const etag = async () => (await rawRequest(gw.url, 'HEAD', '/local/a.txt', auth)).headers.etag!
  const cases: { name: string; method: string; target: string; headers?: () => Promise<Record<string, string>>; status: number; bucket?: string; check?: (headers: Record<string, unknown>) => void }[] = [
    { name: 'memory hit', method: 'GET', target: '/local/a.txt', headers: async () => auth, status: 200 },
    { name: 'HEAD', method: 'HEAD', target: '/local/a.txt', headers: async () => auth, status: 200 },
    { name: 'one range', method: 'GET', target: '/local/a.txt', headers: async () => ({ ...auth, Range: 'bytes=0-4' }), status: 206 },
    { name: 'multipart ranges', method: 'GET', target: '/local/a.txt', headers: async () => ({ ...auth, Range: 'bytes=0-1,4-5' }), status: 206 },
    { name: 'If-None-Match', method: 'GET', target: '/local/a.txt', headers: async () => ({ ...auth, 'If-None-Match': await etag() }), status: 304 },
    { name: 'If-None-Match on HEAD', method: 'HEAD', target: '/local/a.txt', headers: async () => ({ ...auth, 'If-None-Match': await etag() }), status: 304 },
    { name: 'If-Match', method: 'GET', target: '/local/a.txt', headers: async () => ({ ...auth, 'If-Match': '"nope"' }), status: 412, check: (h) => assert.ok(h.etag) },
    { name: 'If-Match on HEAD', method: 'HEAD', target: '/local/a.txt', headers: async () => ({ ...auth, 'If-Match': '"nope"' }), status: 412 },
    { name: 'range past the end', method: 'GET', target: '/local/a.txt', headers: async () => ({ ...auth, Range: 'bytes=100-' }), status: 416, check: (h) => assert.equal(h['content-range'], 'bytes */11') },
    { name: 'no credentials', method: 'GET', target: '/local/a.txt', status: 401 },
    { name: 'missing object', method: 'GET', target: '/local/missing.txt', headers: async () => auth, status: 404 },
    { name: 'unknown bucket', method: 'GET', target: '/nobucket/x', headers: async () => auth, status: 404, bucket: 'nobucket' },
    { name: 'other method', method: 'DELETE', target: '/local/a.txt', headers: async () => auth, status: 405, check: (h) => assert.equal(h.allow, 'GET, HEAD, PUT') },
    { name: 'OPTIONS the hook declines', method: 'OPTIONS', target: '/local/a.txt', status: 405 },
    { name: 'store down', method: 'GET', target: '/down/x', headers: async () => auth, status: 502, bucket: 'down' },
    { name: 'store down, HEAD', method: 'HEAD', target: '/down/x', headers: async () => auth, status: 502, bucket: 'down' },
    { name: 'PUT', method: 'PUT', target: '/local/put.txt', headers: async () => ({ ...auth, 'Content-Type': 'text/plain' }), status: 200 },
    { name: 'PUT with If-None-Match other than *', method: 'PUT', target: '/local/put.txt', headers: async () => ({ ...auth, 'If-None-Match': 'x' }), status: 400 },
    { name: 'refused path (no target)', method: 'GET', target: '/local/%2e%2e/etc/passwd', headers: async () => auth, status: 400, bucket: 'no-target' },
    { name: 'malformed encoding (no target)', method: 'GET', target: '/%zz/a.txt', headers: async () => auth, status: 400, bucket: 'no-target' },
  ]
  for (const c of cases) {
    it(`decorates ${c.status} (${c.name})`, async () => {
      const res = await rawRequest(gw.url, c.method, c.target, await c.headers?.(), c.method === 'PUT' ? 'body' : undefined)
      assert.equal(res.status, c.status)
      assert.equal(res.headers['x-decorated'], c.bucket ?? 'local')
      assert.equal(res.headers.vary, 'Origin')
      c.check?.(res.headers)
    })
  }

  it('decorates each response once', async () => {
    seen.length = 0
    await rawRequest(gw.url, 'GET', '/local/a.txt', auth)
    await rawRequest(gw.url, 'GET', '/%zz/a.txt', auth)
    assert.deepEqual(seen, [
      { method: 'GET', target: 'local/a.txt' },
      { method: 'GET', target: '-' },
    ])
  })

  it('beforeAuth answers an OPTIONS preflight: no auth, no 405, not decorated', async () => {
    const res = await rawRequest(gw.url, 'OPTIONS', '/local/some/key.txt', { 'X-Answer-Preflight': '1' })
    assert.equal(res.status, 204)
    assert.equal(res.headers['x-preflight'], 'local/some/key.txt')
    assert.equal(res.headers['x-decorated'], undefined)
  })

  it('a preflight for an unknown bucket or object is still the hook’s to answer', async () => {
    const res = await rawRequest(gw.url, 'OPTIONS', '/nobucket/x', { 'X-Answer-Preflight': '1' })
    assert.equal(res.status, 204)
  })
})

describe('object routes without hooks', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await writeFile(path.join(gw.root, 'a.txt'), 'hello world')
  })
  after(() => gw.close())

  it('OPTIONS is 405 with Allow, and nothing is decorated', async () => {
    const res = await rawRequest(gw.url, 'OPTIONS', '/local/a.txt')
    assert.equal(res.status, 405)
    assert.equal(res.headers.allow, 'GET, HEAD, PUT')
    assert.equal(res.headers.vary, undefined)
  })
})
