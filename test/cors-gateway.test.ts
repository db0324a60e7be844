/**
 * CORS end to end on a real gateway (issue 11 §1): preflights need no auth and are 204 or
 * 403 (never 405), every object response for an allowed origin carries
 * `Access-Control-Allow-Origin` (200, 206, 304, 400, 401, 404, 412, 416, 5xx), `Vary: Origin`
 * whenever the answer depends on it, and a store's section overrides the top level.
 */
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { presign } from '../src/auth/presign.ts'
import { UpstreamError } from '../src/errors.ts'
import { CORS_DEFAULTS } from '../src/http/cors/policy.ts'
import { createFsStore } from '../src/stores/fs.ts'
import type { Store } from '../src/stores/types.ts'
import { BEARER, type RawResponse, type TestGateway, rawRequest, spawnCli, startGateway, tempDir } from './helpers/gateway.ts'

const auth = { Authorization: `Bearer ${BEARER}` }
const APP = 'https://app.example.com'
const EXPOSE = CORS_DEFAULTS.expose_headers.join(', ')

/** A store whose every call fails as a refused connection would (→ 502). */
function downStore(id: string): Store {
  const refuse = async (): Promise<never> => {
    throw new UpstreamError(id, 'connect', 'connection refused')
  }
  return { type: 'fs', id, head: refuse, get: refuse, put: refuse }
}

const corsHeaders = (res: RawResponse) => Object.keys(res.headers).filter((name) => name.startsWith('access-control-'))
const varies = (res: RawResponse) => (res.headers.vary ?? '').split(/\s*,\s*/).includes('Origin')

describe('CORS on the object routes', () => {
  let gw: TestGateway
  const preflight = (target: string, headers: Record<string, string>) => rawRequest(gw.url, 'OPTIONS', target, headers)

  before(async () => {
    const root = await tempDir()
    const roots: Record<string, string> = {}
    const stores = new Map<string, Store>([['down', downStore('down')]])
    for (const id of ['local', 'partner', 'open', 'creds']) {
      roots[id] = path.join(root, id)
      await mkdir(roots[id], { recursive: true })
      await writeFile(path.join(roots[id], 'a.txt'), `${id} file`)
      stores.set(id, createFsStore({ id, root: roots[id] }))
    }
    const fs = (id: string, cors?: unknown) => ({ type: 'fs', root: roots[id] ?? root, ...(cors ? { cors } : {}) })
    gw = await startGateway({
      root,
      stores,
      raw: {
        cors: { allowed_origins: [APP, 'https://*.example.org'], max_age_seconds: 120 },
        stores: {
          local: fs('local'),
          down: fs('down'),
          partner: fs('partner', { allowed_origins: ['https://partner.example'], allowed_headers: ['*'], allow_private_network: true }),
          open: fs('open', { allowed_origins: ['*'] }),
          creds: fs('creds', { allowed_origins: ['*'], allow_credentials: true }),
        },
      },
    })
  })
  after(() => gw.close())

  describe('preflight', () => {
    it('allowed origin, method and headers: 204 with the allow headers, no auth needed', async () => {
      const res = await preflight('/local/new/upload.bin', { Origin: APP, 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'content-type,authorization,if-none-match' })
      assert.equal(res.status, 204)
      assert.equal(res.body.length, 0)
      assert.equal(res.headers['access-control-allow-origin'], APP)
      assert.equal(res.headers['access-control-allow-methods'], 'GET, HEAD, PUT')
      assert.equal(res.headers['access-control-allow-headers'], CORS_DEFAULTS.allowed_headers.join(', '))
      assert.equal(res.headers['access-control-max-age'], '120')
      assert.equal(res.headers['access-control-allow-credentials'], undefined)
      assert.ok(varies(res))
    })
    it('a pattern origin, an unknown bucket and a refused path are answered too (top-level policy)', async () => {
      for (const target of ['/local/a.txt', '/nobucket/x', '/local/%2e%2e/x']) {
        const res = await preflight(target, { Origin: 'https://cdn.eu.example.org', 'Access-Control-Request-Method': 'GET' })
        assert.equal(res.status, target.includes('%2e') ? 400 : 204, target)
      }
    })

    const refusals: [string, Record<string, string>, RegExp][] = [
      ['another origin', { Origin: 'https://evil.example.com', 'Access-Control-Request-Method': 'GET' }, /origin not allowed/],
      ['a lookalike of the pattern', { Origin: 'https://example.org.evil.net', 'Access-Control-Request-Method': 'GET' }, /origin not allowed/],
      ['a method not allowed', { Origin: APP, 'Access-Control-Request-Method': 'DELETE' }, /method not allowed/],
      ['a header not allowed', { Origin: APP, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'x-secret' }, /"x-secret" not allowed/],
      ['private network not allowed', { Origin: APP, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Private-Network': 'true' }, /private network/],
      ['no Access-Control-Request-Method', { Origin: APP }, /not a CORS preflight/],
      ['no Origin', {}, /not a CORS preflight/],
    ]
    for (const [name, headers, message] of refusals) {
      it(`refuses ${name}: 403 without CORS headers, never 405`, async () => {
        const res = await preflight('/local/a.txt', headers)
        assert.equal(res.status, 403)
        assert.deepEqual(corsHeaders(res), [])
        const body = JSON.parse(res.body.toString()) as { error: string; message: string }
        assert.equal(body.error, 'cors preflight refused')
        assert.match(body.message, message)
      })
    }

    it('a store’s own section: its origins, any header echoed, private network', async () => {
      const res = await preflight('/partner/a.txt', {
        Origin: 'https://partner.example',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'x-trace-id, authorization',
        'Access-Control-Request-Private-Network': 'true',
      })
      assert.equal(res.status, 204)
      assert.equal(res.headers['access-control-allow-headers'], 'x-trace-id, authorization')
      assert.equal(res.headers['access-control-allow-private-network'], 'true')
      assert.equal(res.headers['access-control-max-age'], '120', 'inherited from the top level')
      assert.equal((await preflight('/partner/a.txt', { Origin: APP, 'Access-Control-Request-Method': 'GET' })).status, 403)
    })
  })

  describe('responses for an allowed origin', () => {
    let etag: string
    before(async () => {
      const res = await rawRequest(gw.url, 'GET', '/local/a.txt', auth)
      etag = res.headers.etag!
    })
    const expired = () => presign({ baseUrl: gw.url, bucket: 'local', path: 'a.txt', privateKey: gw.keys.private_key, expiresIn: 60, now: Date.now() - 3_600_000 })
    const cases: { name: string; method?: string; target: string | (() => string); headers?: () => Record<string, string>; status: number; body?: string }[] = [
      { name: 'memory hit', target: '/local/a.txt', headers: () => auth, status: 200 },
      { name: 'HEAD', method: 'HEAD', target: '/local/a.txt', headers: () => auth, status: 200 },
      { name: 'range', target: '/local/a.txt', headers: () => ({ ...auth, Range: 'bytes=0-4' }), status: 206 },
      { name: 'not modified', target: '/local/a.txt', headers: () => ({ ...auth, 'If-None-Match': etag }), status: 304 },
      { name: 'precondition failed', target: '/local/a.txt', headers: () => ({ ...auth, 'If-Match': '"other"' }), status: 412 },
      { name: 'range past the end', target: '/local/a.txt', headers: () => ({ ...auth, Range: 'bytes=99-' }), status: 416 },
      { name: 'no credentials', target: '/local/a.txt', status: 401 },
      { name: 'expired link', target: () => expired().slice(gw.url.length), status: 401 },
      { name: 'missing object', target: '/local/nope.txt', headers: () => auth, status: 404 },
      { name: 'unknown bucket', target: '/nobucket/x', headers: () => auth, status: 404 },
      { name: 'refused path', target: '/local/%2e%2e/x', headers: () => auth, status: 400 },
      { name: 'other method', method: 'DELETE', target: '/local/a.txt', headers: () => auth, status: 405 },
      { name: 'store down', target: '/down/x', headers: () => auth, status: 502 },
      { name: 'upload', method: 'PUT', target: '/local/up.txt', headers: () => ({ ...auth, 'Content-Type': 'text/plain' }), status: 200, body: 'uploaded' },
    ]
    for (const c of cases) {
      it(`${c.status} (${c.name}) carries Access-Control-Allow-Origin, Expose-Headers and Vary: Origin`, async () => {
        const target = typeof c.target === 'string' ? c.target : c.target()
        const res = await rawRequest(gw.url, c.method ?? 'GET', target, { Origin: APP, ...c.headers?.() }, c.body)
        assert.equal(res.status, c.status)
        assert.equal(res.headers['access-control-allow-origin'], APP)
        assert.equal(res.headers['access-control-expose-headers'], EXPOSE)
        assert.equal(res.headers['access-control-allow-credentials'], undefined)
        assert.ok(varies(res), String(res.headers.vary))
      })
    }

    it('another origin gets no CORS headers, but Vary: Origin', async () => {
      const res = await rawRequest(gw.url, 'GET', '/local/a.txt', { Origin: 'https://evil.example.com', ...auth })
      assert.equal(res.status, 200)
      assert.deepEqual(corsHeaders(res), [])
      assert.ok(varies(res))
    })
    it('no Origin: no CORS headers, but Vary: Origin (the browser cache must not reuse it for a CORS request)', async () => {
      const res = await rawRequest(gw.url, 'GET', '/local/a.txt', auth)
      assert.deepEqual(corsHeaders(res), [])
      assert.ok(varies(res))
    })
    it('a store’s section overrides the top level', async () => {
      const top = await rawRequest(gw.url, 'GET', '/partner/a.txt', { Origin: APP, ...auth })
      assert.equal(top.headers['access-control-allow-origin'], undefined)
      const own = await rawRequest(gw.url, 'GET', '/partner/a.txt', { Origin: 'https://partner.example', ...auth })
      assert.equal(own.headers['access-control-allow-origin'], 'https://partner.example')
    })
    it('`*` without credentials: `*` on every response, Origin or not, and no Vary', async () => {
      for (const headers of [{ Origin: APP, ...auth }, auth, { Origin: APP }]) {
        const res = await rawRequest(gw.url, 'GET', '/open/a.txt', headers)
        assert.equal(res.headers['access-control-allow-origin'], '*')
        assert.equal(res.headers['access-control-expose-headers'], EXPOSE)
        assert.equal(res.headers.vary, undefined)
      }
    })
    it('`*` with credentials: the origin is echoed with Allow-Credentials, `null` is not', async () => {
      const res = await rawRequest(gw.url, 'GET', '/creds/a.txt', { Origin: 'https://anyone.example', ...auth })
      assert.equal(res.headers['access-control-allow-origin'], 'https://anyone.example')
      assert.equal(res.headers['access-control-allow-credentials'], 'true')
      assert.ok(varies(res))
      const sandboxed = await rawRequest(gw.url, 'GET', '/creds/a.txt', { Origin: 'null', ...auth })
      assert.deepEqual(corsHeaders(sandboxed), [])
    })
  })
})

describe('no cors section', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
    await writeFile(path.join(gw.root, 'a.txt'), 'hello')
  })
  after(() => gw.close())

  it('no CORS headers and no Vary, as before; OPTIONS stays 405', async () => {
    const res = await rawRequest(gw.url, 'GET', '/local/a.txt', { Origin: APP, ...auth })
    assert.equal(res.status, 200)
    assert.deepEqual(corsHeaders(res), [])
    assert.equal(res.headers.vary, undefined)
    assert.equal((await rawRequest(gw.url, 'OPTIONS', '/local/a.txt', { Origin: APP, 'Access-Control-Request-Method': 'GET' })).status, 405)
  })
})

describe('development mode (no config)', () => {
  it('allows every origin', async () => {
    const dir = await tempDir()
    const server = await spawnCli(['--listen', '127.0.0.1:0'], /presigned URL \(1 h\):\s+(\S+)/, { cwd: dir })
    try {
      const res = await fetch(server.match[1]!, { headers: { Origin: 'http://localhost:5173' } })
      assert.equal(res.status, 200)
      assert.equal(res.headers.get('access-control-allow-origin'), '*')
      await res.arrayBuffer()
    } finally {
      await server.stop()
    }
  })
})
