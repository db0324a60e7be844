import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { parse as parseYaml } from 'yaml'
import { ConfigError, validateConfig } from '../src/config/load.ts'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { createFsStore } from '../src/stores/fs.ts'
import type { Store } from '../src/stores/types.ts'
import { BEARER, ROOT, type TestGateway, rawRequest, startGateway, tempDir } from './helpers/gateway.ts'
import { type RawConnection, connectRaw, parseHead, within } from './helpers/raw-socket.ts'

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

describe('limits.min_upload_bytes_per_second', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ raw: { limits: { min_upload_bytes_per_second: 1000, upload_rate_window_seconds: 1 } } })
  })
  after(() => gw.close())

  it('cuts a PUT whose body trickles at 10 bytes a second, and the gateway keeps serving', async () => {
    const raw = await connectRaw(gw.url)
    try {
      raw.socket.write(`PUT /local/slow.txt HTTP/1.1\r\nHost: test\r\n${auth}Content-Length: 100000\r\n\r\n`)
      raw.trickle(Buffer.from('0123456789'), 1000)
      const closedAfterMs = await within(raw.closed, 5000, 'still open' as const)
      assert.notEqual(closedAfterMs, 'still open', 'a body at 10 B/s was not cut')
      assert.ok((closedAfterMs as number) >= 900, `cut after ${closedAfterMs} ms, before a whole window`)
    } finally {
      raw.destroy()
    }
    assert.equal((await rawRequest(gw.url, 'GET', '/health')).status, 200)
    assert.equal((await rawRequest(gw.url, 'GET', '/local/slow.txt', { Authorization: `Bearer ${BEARER}` })).status, 404)
  })

  it('cuts a PUT that sends its headers and then nothing', async () => {
    const raw = await connectRaw(gw.url)
    try {
      raw.socket.write(`PUT /local/silent.txt HTTP/1.1\r\nHost: test\r\n${auth}Content-Length: 10\r\n\r\n`)
      assert.notEqual(await within(raw.closed, 5000, 'still open'), 'still open')
    } finally {
      raw.destroy()
    }
  })

  it('leaves a PUT at normal speed alone', async () => {
    const body = Buffer.alloc(4 * 2 ** 20, 'abcdefgh')
    const put = await rawRequest(gw.url, 'PUT', '/local/fast.bin', { Authorization: `Bearer ${BEARER}` }, body)
    assert.equal(put.status, 200)
    const got = await rawRequest(gw.url, 'GET', '/local/fast.bin', { Authorization: `Bearer ${BEARER}` })
    assert.ok(got.body.equals(body))
  })

})

describe('limits.min_upload_bytes_per_second with a store that is slow to read', () => {
  let gw: TestGateway
  before(async () => {
    const root = await tempDir()
    const fs = createFsStore({ id: 'local', root })
    // The store waits 2.5 s before it reads the body: the gateway is the one not reading.
    const slow: Store = { ...fs, head: fs.head.bind(fs), get: fs.get.bind(fs), put: async (key, body, options) => (await sleep(2500), fs.put(key, body, options)) }
    gw = await startGateway({ root, stores: new Map([['local', slow]]), raw: { limits: { min_upload_bytes_per_second: 1000, upload_rate_window_seconds: 1 } } })
  })
  after(() => gw.close())

  it('does not blame the client for backpressure', async () => {
    const body = Buffer.alloc(2 ** 20, 'z')
    const raw = await connectRaw(gw.url)
    try {
      raw.socket.write(`PUT /local/paced.bin HTTP/1.1\r\nHost: test\r\n${auth}Content-Length: ${body.length}\r\n\r\n`)
      raw.socket.write(body)
      for (let i = 0; i < 200 && !parseHead(raw.received()) && !raw.isClosed(); i++) await sleep(50)
      assert.equal(parseHead(raw.received())?.status, 200, `closed: ${raw.isClosed()}; ${raw.received().slice(0, 200)}`)
    } finally {
      raw.destroy()
    }
  })
})

describe('limits.max_connections', () => {
  let gw: TestGateway
  before(async () => {
    gw = await startGateway({ raw: { limits: { max_connections: 2 } } })
  })
  after(() => gw.close())

  /** A connection that has been served once (so the server has surely accepted it). */
  async function held(): Promise<RawConnection> {
    const raw = await connectRaw(gw.url)
    raw.socket.write('GET /health HTTP/1.1\r\nHost: test\r\n\r\n')
    while (!parseHead(raw.received()) && !raw.isClosed()) await sleep(10)
    return raw
  }

  it('closes a third connection while two are held, and accepts again once one is gone', async () => {
    const first = await held()
    const second = await held()
    try {
      assert.equal(parseHead(first.received())?.status, 200)
      assert.equal(parseHead(second.received())?.status, 200)
      const third = await connectRaw(gw.url)
      third.socket.write('GET /health HTTP/1.1\r\nHost: test\r\n\r\n')
      assert.notEqual(await within(third.closed, 2000, 'still open'), 'still open', 'a third connection was accepted')
      assert.equal(third.received(), '')
      first.destroy()
      await first.closed
      await sleep(50)
      const fourth = await held()
      assert.equal(parseHead(fourth.received())?.status, 200)
      fourth.destroy()
      await fourth.closed
    } finally {
      first.destroy()
      second.destroy()
    }
    await second.closed
    await sleep(50)
    const metrics = await new Promise<string>((resolve, reject) =>
      http.get(`${gw.url}/metrics`, { agent: false }, (res) => {
        let text = ''
        res.on('data', (d: Buffer) => (text += d))
        res.on('end', () => resolve(text))
      }).on('error', reject),
    )
    assert.match(metrics, /cachegate_connections_cut_total\{reason="max_connections"\} [1-9]/)
  })
})

describe('limits config', () => {
  const base = { auth: { bearer_token: BEARER }, stores: { local: { type: 'fs', root: '/tmp' } } }

  it('has the defaults documented (commented out) in config.example.yaml', async () => {
    const text = await readFile(path.join(ROOT, 'config.example.yaml'), 'utf8')
    const block = text.slice(text.indexOf('# limits:')).split('\n\n')[0]!.replace(/^# ?/gm, '')
    const documented = validateConfig({ ...base, ...parseYaml(block) }).limits
    assert.deepEqual(documented, validateConfig(base).limits)
    assert.deepEqual(documented, { max_connections: 10_000, min_upload_bytes_per_second: 1024, upload_rate_window_seconds: 30, failed_auth_per_second: 20, failed_auth_burst: 100 })
  })

  it('refuses negative, fractional and unknown values, listing each', () => {
    assert.throws(
      () => validateConfig({ ...base, limits: { max_connections: -1, failed_auth_burst: 1.5, min_upload_bytes_per_second: 'fast', upload_rate_window_seconds: 0, failed_auth_per_sec: 1 } }),
      (error: unknown) => error instanceof ConfigError && ['max_connections', 'failed_auth_burst', 'min_upload_bytes_per_second', 'upload_rate_window_seconds', 'failed_auth_per_sec'].every((key) => error.problems.some((p) => p.includes(key))),
    )
  })

  it('takes flat environment variables', async () => {
    const { loadConfig } = await import('../src/config/load.ts')
    const config = loadConfig('env', { CACHEGATE__AUTH__BEARER_TOKEN: BEARER, CACHEGATE__STORES__local__TYPE: 'fs', CACHEGATE__STORES__local__ROOT: '/tmp', CACHEGATE__LIMITS__FAILED_AUTH_PER_SECOND: '0', CACHEGATE__LIMITS__MIN_UPLOAD_BYTES_PER_SECOND: '4KiB' })
    assert.equal(config.limits.failed_auth_per_second, 0)
    assert.equal(config.limits.min_upload_bytes_per_second, 4096)
  })
})
