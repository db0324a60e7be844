import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BEARER, type TestGateway, startGateway } from './helpers/gateway.ts'
import { connectRaw, parseHead, within } from './helpers/raw-socket.ts'

const auth = `Authorization: Bearer ${BEARER}\r\n`
const HUGE = 'Content-Length: 100000000000\r\n'
const CHUNK = Buffer.alloc(64 * 1024, 'x')

/** Sends `head`, streams a body until the server closes, and reports what the client saw. */
async function refusedUpload(gw: TestGateway, head: string): Promise<{ status?: number; connection?: string; closedAfterMs: number | 'still open'; written: number }> {
  const raw = await connectRaw(gw.url)
  try {
    raw.socket.write(`${head}Host: test\r\n\r\n`)
    raw.stream(CHUNK)
    const closedAfterMs = await within(raw.closed, 3000, 'still open' as const)
    const parsed = parseHead(raw.received())
    return { status: parsed?.status, connection: parsed?.headers.connection, closedAfterMs, written: raw.written() }
  } finally {
    raw.destroy()
  }
}

describe('refused requests with a body close their connection', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway()
  })
  after(() => gw.close())

  it('an unauthenticated PUT with Content-Length 1e11 gets 401 with Connection: close, and the server closes while the client is still sending', async () => {
    const seen = await refusedUpload(gw, `PUT /local/big.bin HTTP/1.1\r\n${HUGE}`)
    assert.equal(seen.status, 401)
    assert.equal(seen.connection, 'close')
    assert.notEqual(seen.closedAfterMs, 'still open', `the gateway kept reading (${seen.written} bytes sent)`)
    assert.ok(seen.written < 1e9, `the gateway read ${seen.written} bytes before closing`)
  })

  it('a chunked unauthenticated PUT is closed the same way', async () => {
    const seen = await refusedUpload(gw, 'PUT /local/big.bin HTTP/1.1\r\nTransfer-Encoding: chunked\r\n')
    assert.equal(seen.status, 401)
    assert.equal(seen.connection, 'close')
    assert.notEqual(seen.closedAfterMs, 'still open')
  })

  for (const [name, head, status] of [
    ['405 (POST to an object)', `POST /local/x HTTP/1.1\r\n${auth}${HUGE}`, 405],
    ['404 (unknown bucket)', `PUT /nope/x HTTP/1.1\r\n${auth}${HUGE}`, 404],
    ['400 (bad If-None-Match)', `PUT /local/x HTTP/1.1\r\n${auth}If-None-Match: "a"\r\n${HUGE}`, 400],
    ['413 (over max_upload_size)', `PUT /local/x HTTP/1.1\r\n${auth}Content-Length: 100000000000000\r\n`, 413],
    ['an authenticated GET with a body', `GET /local/missing HTTP/1.1\r\n${auth}${HUGE}`, 404],
    ['GET /health with a body', `GET /health HTTP/1.1\r\n${HUGE}`, 200],
  ] as const) {
    it(`${name}: answered with Connection: close, connection closed`, async () => {
      const seen = await refusedUpload(gw, head)
      assert.equal(seen.status, status)
      assert.equal(seen.connection, 'close')
      assert.notEqual(seen.closedAfterMs, 'still open')
    })
  }

  it('a refusal without a body keeps the connection alive', async () => {
    const raw = await connectRaw(gw.url)
    try {
      raw.socket.write('GET /local/a.txt HTTP/1.1\r\nHost: test\r\n\r\n')
      assert.equal(await within(raw.closed, 300, 'open'), 'open')
      assert.equal(parseHead(raw.received())?.status, 401)
      assert.notEqual(parseHead(raw.received())?.headers.connection, 'close')
    } finally {
      raw.destroy()
    }
  })
})
