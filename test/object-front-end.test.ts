/**
 * The front-end seam (issue 10 §4): a second dialect plugs into the same get/head/put
 * handlers by saying how a request names its target, how it authenticates and how errors
 * are written. Here a tiny one: `/plain/<key>` in the `local` bucket, an `X-Token` header,
 * errors as text/plain. Also checks that a memory hit is answered with no promise at all.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { type AddressInfo } from 'node:net'
import http from 'node:http'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createMemoryCache } from '../src/cache/memory.ts'
import { AuthError, InvalidKeyError } from '../src/errors.ts'
import { type FrontEnd, type ObjectHooks, createDefaultFrontEnd, createObjectHandler, splitTarget } from '../src/http/object/index.ts'
import { createLogger } from '../src/log.ts'
import { Telemetry } from '../src/metrics.ts'
import { createObjectService } from '../src/objects/index.ts'
import { createFsStore } from '../src/stores/fs.ts'
import { decodeKey } from '../src/stores/key.ts'
import { BEARER, rawRequest, tempDir } from './helpers/gateway.ts'

/** The alternative dialect: plain-text errors, its own target shape and credential. */
const plainFrontEnd: FrontEnd = {
  target(_incoming, rawPath) {
    if (!rawPath.startsWith('/plain/')) throw new InvalidKeyError('expected /plain/<key>')
    return { bucket: 'local', key: decodeKey(rawPath.slice('/plain/'.length)) }
  },
  authenticate(incoming) {
    if (incoming.headers['x-token'] !== 'letmein') throw new AuthError('no token')
    return { kind: 'bearer' }
  },
  writeError(outgoing, error) {
    const body = `${error.status} ${error.error}\n`
    outgoing.writeHead(error.status, { ...error.headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body) })
    outgoing.end(body)
  },
}

interface Served {
  url: string
  /** What the handler returned for each request, in order: 'sync' (undefined) or 'promise'. */
  returns: ('sync' | 'promise')[]
  close(): Promise<void>
}

/** A loopback server that sends every request to one object handler over `root`. */
async function serve(root: string, frontEnd: FrontEnd, hooks?: ObjectHooks): Promise<Served> {
  const telemetry = new Telemetry()
  const logger = createLogger('silent')
  const objects = createObjectService({ cache: createMemoryCache({ maxBytes: 8 * 1024 * 1024 }), maxObjectSize: 1024 * 1024, maxUploadSize: 1024 * 1024, telemetry, logger })
  const stores = new Map([['local', createFsStore({ id: 'local', root })]])
  const handle = createObjectHandler({ stores, objects, frontEnd, hooks, telemetry, logger })
  const returns: Served['returns'] = []
  const server = http.createServer((incoming, outgoing) => {
    const { path: rawPath, query } = splitTarget(incoming.url ?? '/')
    const pending = handle(incoming, outgoing, rawPath, query)
    returns.push(pending ? 'promise' : 'sync')
    pending?.catch(() => outgoing.destroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    returns,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

describe('front-end seam', () => {
  let root: string
  let plain: Served
  const token = { 'X-Token': 'letmein' }

  before(async () => {
    root = await tempDir()
    await writeFile(path.join(root, 'a.txt'), 'hello world')
    for (const n of [1, 2, 3]) await writeFile(path.join(root, `hit${n}.txt`), 'cached')
    plain = await serve(root, plainFrontEnd)
  })
  after(() => plain.close())

  it('GET, HEAD and PUT go through the shared handlers', async () => {
    const put = await rawRequest(plain.url, 'PUT', '/plain/new.txt', { ...token, 'Content-Type': 'text/plain' }, 'fresh')
    assert.equal(put.status, 200)
    const got = await rawRequest(plain.url, 'GET', '/plain/new.txt', token)
    assert.equal(got.status, 200)
    assert.equal(got.body.toString(), 'fresh')
    const head = await rawRequest(plain.url, 'HEAD', '/plain/a.txt', token)
    assert.equal(head.status, 200)
    assert.equal(head.headers['content-length'], '11')
    const range = await rawRequest(plain.url, 'GET', '/plain/a.txt', { ...token, Range: 'bytes=6-' })
    assert.equal(range.status, 206)
    assert.equal(range.body.toString(), 'world')
  })

  const errors: { name: string; method: string; target: string; headers?: Record<string, string>; status: number; error: string; check?: (h: http.IncomingHttpHeaders) => void }[] = [
    { name: 'no token', method: 'GET', target: '/plain/a.txt', status: 401, error: 'unauthorized', check: (h) => assert.match(String(h['www-authenticate']), /^Bearer /) },
    { name: 'missing object', method: 'GET', target: '/plain/none.txt', headers: token, status: 404, error: 'not found' },
    { name: 'a target the dialect refuses', method: 'GET', target: '/other/a.txt', headers: token, status: 400, error: 'invalid path' },
    { name: 'unsatisfiable range', method: 'GET', target: '/plain/a.txt', headers: { ...token, Range: 'bytes=50-' }, status: 416, error: 'range not satisfiable', check: (h) => assert.equal(h['content-range'], 'bytes */11') },
    { name: 'failed If-Match', method: 'GET', target: '/plain/a.txt', headers: { ...token, 'If-Match': '"x"' }, status: 412, error: 'precondition failed' },
    { name: 'other method', method: 'DELETE', target: '/plain/a.txt', headers: token, status: 405, error: 'method not allowed', check: (h) => assert.equal(h.allow, 'GET, HEAD, PUT') },
    { name: 'PUT refused before its body', method: 'PUT', target: '/plain/b.txt', headers: { ...token, 'Content-Type': 'not a type' }, status: 400, error: 'bad request' },
  ]
  for (const e of errors) {
    it(`${e.status} (${e.name}) is written by the front end, as text`, async () => {
      const res = await rawRequest(plain.url, e.method, e.target, e.headers, e.method === 'PUT' ? 'x' : undefined)
      assert.equal(res.status, e.status)
      assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8')
      assert.equal(res.body.toString(), `${e.status} ${e.error}\n`)
      e.check?.(res.headers)
    })
  }

  it('a memory hit is answered with no promise, through either front end, hooks or not', async () => {
    const decorate: ObjectHooks['decorate'] = (_incoming, headers) => headers.setHeader('X-Decorated', '1')
    const variants: [string, Served, Record<string, string>, string][] = [
      ['plain front end', plain, token, '/plain/hit1.txt'],
      ['default front end', await serve(root, createDefaultFrontEnd({ authenticate: () => ({ kind: 'bearer' }) })), { Authorization: `Bearer ${BEARER}` }, '/local/hit2.txt'],
      ['default front end with hooks', await serve(root, createDefaultFrontEnd({ authenticate: () => ({ kind: 'bearer' }) }), { beforeAuth: () => false, decorate }), {}, '/local/hit3.txt'],
    ]
    try {
      for (const [name, served, headers, target] of variants) {
        served.returns.length = 0
        const first = await rawRequest(served.url, 'GET', target, headers)
        assert.equal(first.status, 200, name)
        assert.deepEqual(served.returns, ['promise'], name)
        // The fill is cached just after its last byte went out: under load the next request
        // can still join it. Ask until it is a memory hit (bounded), then check that one.
        let second = first
        for (let i = 0; i < 50; i++) {
          served.returns.length = 0
          second = await rawRequest(served.url, 'GET', target, headers)
          if (second.headers['x-cg-status'] === 'hit=1') break
          await sleep(10)
        }
        assert.equal(second.status, 200, name)
        assert.equal(second.headers['x-cg-status'], 'hit=1', name)
        assert.deepEqual(served.returns, ['sync'], name)
        if (served !== plain && name.endsWith('hooks')) assert.equal(second.headers['x-decorated'], '1')
      }
    } finally {
      await Promise.all(variants.slice(1).map(([, served]) => served.close()))
    }
  })
})
