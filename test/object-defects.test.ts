/**
 * HTTP-level defects of the object routes (issue 10): duplicated credentials and
 * Cachegate's case-insensitive `prefetch` flag.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { BEARER, type TestGateway, rawRequest, startGateway } from './helpers/gateway.ts'
import { connectRaw, parseHead } from './helpers/raw-socket.ts'

/** Sends `lines` as the request head on a fresh connection; resolves with the response head. */
async function rawHead(base: string, lines: string[]): Promise<{ status: number; headers: Record<string, string> }> {
  const connection = await connectRaw(base)
  try {
    connection.socket.write(`${lines.join('\r\n')}\r\nConnection: close\r\n\r\n`)
    await connection.closed
    const head = parseHead(connection.received())
    assert.ok(head, `no response to ${lines[0]}`)
    return head
  } finally {
    connection.destroy()
  }
}

describe('object routes: HTTP-level defects', () => {
  let gw: TestGateway
  const host = () => `Host: ${new URL(gw.url).host}`

  before(async () => {
    gw = await startGateway()
    await writeFile(path.join(gw.root, 'a.txt'), 'hello')
    for (const name of ['p1.bin', 'p2.bin', 'p3.bin', 'p4.bin']) await writeFile(path.join(gw.root, name), name)
  })
  after(() => gw.close())

  describe('two Authorization headers', () => {
    // Node keeps the first one; a proxy in front may act on the last. Neither may win.
    const cases: [string, string[]][] = [
      ['valid then invalid', [`Authorization: Bearer ${BEARER}`, 'Authorization: Bearer wrong-token']],
      ['invalid then valid', ['Authorization: Bearer wrong-token', `Authorization: Bearer ${BEARER}`]],
      ['same token twice, names in different case', [`authorization: Bearer ${BEARER}`, `AUTHORIZATION: Bearer ${BEARER}`]],
    ]
    for (const [name, auth] of cases) {
      for (const method of ['GET', 'HEAD']) {
        it(`${method}, ${name} → 400`, async () => {
          const res = await rawHead(gw.url, [`${method} /local/a.txt HTTP/1.1`, host(), ...auth])
          assert.equal(res.status, 400)
        })
      }
    }

    it('PUT with two Authorization headers → 400 and nothing written', async () => {
      const res = await rawHead(gw.url, ['PUT /local/dup-put.txt HTTP/1.1', host(), `Authorization: Bearer ${BEARER}`, 'Authorization: Bearer wrong-token', 'Content-Length: 0'])
      assert.equal(res.status, 400)
      const after = await rawRequest(gw.url, 'GET', '/local/dup-put.txt', { Authorization: `Bearer ${BEARER}` })
      assert.equal(after.status, 404)
    })

    it('one Authorization header still works', async () => {
      const res = await rawHead(gw.url, ['GET /local/a.txt HTTP/1.1', host(), `Authorization: Bearer ${BEARER}`])
      assert.equal(res.status, 200)
    })
  })

  describe('prefetch flag, case-insensitive like Cachegate (1|0|true|false)', () => {
    const auth = { Authorization: `Bearer ${BEARER}` }
    /** X-CG-Status of a plain HEAD: hit=1 once the object is in the cache. */
    const cached = async (key: string) => (await rawRequest(gw.url, 'HEAD', `/local/${key}`, auth)).headers['x-cg-status'] === 'hit=1'
    async function warmedWithin(key: string, ms: number): Promise<boolean> {
      for (const deadline = performance.now() + ms; performance.now() < deadline; await sleep(20)) {
        if (await cached(key)) return true
      }
      return false
    }

    for (const [value, key] of [['TRUE', 'p1.bin'], ['True', 'p2.bin']] as const) {
      it(`HEAD ?prefetch=${value} warms the cache`, async () => {
        assert.equal(await cached(key), false)
        const res = await rawRequest(gw.url, 'HEAD', `/local/${key}?prefetch=${value}`, auth)
        assert.equal(res.status, 200)
        assert.equal(await warmedWithin(key, 2000), true)
      })
    }

    for (const [value, key] of [['False', 'p3.bin'], ['FALSE', 'p4.bin']] as const) {
      it(`HEAD ?prefetch=${value} is accepted and does not warm the cache`, async () => {
        const res = await rawRequest(gw.url, 'HEAD', `/local/${key}?prefetch=${value}`, auth)
        assert.equal(res.status, 200)
        assert.equal(await warmedWithin(key, 300), false)
      })
    }
  })
})
