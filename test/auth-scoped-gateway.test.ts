/**
 * Version 2 links, key ids, max_link_lifetime and scoped tokens against a running gateway:
 * the status and message a client sees, the PUT limits (`ms` 413, `ct` 415), download names
 * (`fn`/`disp`) on cached and uncached answers, and `ip` binding behind `trust_proxy`.
 */
import assert from 'node:assert/strict'
import { readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { decodeBase64Url, generateKeyPair, sign } from '../src/auth/keys.ts'
import { type PresignOptions, presign } from '../src/auth/presign.ts'
import { generateToken, hashToken } from '../src/auth/tokens.ts'
import { BEARER, type TestGateway, rawRequest, startGateway, tempDir } from './helpers/gateway.ts'
import { connectRaw, parseHead, within } from './helpers/raw-socket.ts'

const rotated = generateKeyPair()
const ci = generateToken()
const uploader = generateToken()

describe('scoped links and tokens on a running gateway', () => {
  let gw: TestGateway
  let root: string
  const link = (options: Omit<PresignOptions, 'baseUrl' | 'privateKey' | 'bucket'> & { bucket?: string; privateKey?: string }) => {
    const url = new URL(presign({ baseUrl: gw.url, bucket: 'local', privateKey: gw.keys.private_key, expiresIn: 600, ...options }))
    return `${url.pathname}${url.search}`
  }
  const get = (target: string, headers: Record<string, string> = {}, method = 'GET') => rawRequest(gw.url, method, target, headers)
  const put = (target: string, body: string, headers: Record<string, string> = {}) => rawRequest(gw.url, 'PUT', target, headers, body)
  const message = (res: { body: Buffer }) => (JSON.parse(res.body.toString()) as { message: string }).message

  before(async () => {
    root = await tempDir()
    await writeFile(path.join(root, 'a.txt'), 'alpha')
    await writeFile(path.join(root, 'keep.txt'), 'original')
    const { public_key } = generateKeyPair()
    gw = await startGateway({
      root,
      raw: {
        trust_proxy: ['127.0.0.1'],
        stores: { local: { type: 'fs', root }, other: { type: 'fs', root } },
        auth: {
          public_key,
          bearer_token: BEARER,
          keys: [{ id: 'rot-2026', public_key: rotated.public_key }],
          tokens: [
            { id: 'ci', sha256: hashToken(ci), buckets: ['local'], methods: ['GET'], prefix: 'builds/' },
            { id: 'up', sha256: hashToken(uploader), buckets: '*', methods: 'PUT,GET' },
          ],
          max_link_lifetime: '1d',
        },
      },
    })
    // startGateway made its own pair: sign with the rotated key (auth.keys) unless told otherwise.
    gw.keys.private_key = rotated.private_key
    gw.keys.public_key = rotated.public_key
  })
  after(() => gw.close())

  it('a prefix link reads any key under its prefix, HEAD included, and nothing else (403, saying why)', async () => {
    await writeFile(path.join(root, 'b.txt'), 'beta')
    assert.throws(() => link({ prefix: '' }), /pp must be a non-empty prefix/)
    const { mkdir } = await import('node:fs/promises')
    await mkdir(path.join(root, 'docs'), { recursive: true })
    await writeFile(path.join(root, 'docs', 'one.txt'), 'one')
    await writeFile(path.join(root, 'docs', 'two.txt'), 'two')
    const sig = new URL(`http://x${link({ prefix: 'docs/' })}`).search
    for (const name of ['one', 'two']) {
      const res = await get(`/local/docs/${name}.txt${sig}`)
      assert.equal(res.status, 200)
      assert.equal(res.body.toString(), name)
      assert.equal((await get(`/local/docs/${name}.txt${sig}`, {}, 'HEAD')).status, 200)
    }
    const outside = await get(`/local/a.txt${sig}`)
    assert.equal(outside.status, 403)
    assert.equal(message(outside), 'link is for prefix docs/ only')
    const wrongBucket = await get(`/other/docs/one.txt${sig}`)
    assert.equal(wrongBucket.status, 403)
    assert.equal(message(wrongBucket), 'link is for bucket local only')
    const putting = await put(`/local/docs/three.txt${sig}`, 'x')
    assert.equal(putting.status, 403)
    assert.equal(message(putting), 'link does not allow PUT')
  })

  it('several methods in one link; a key id picks the key; unknown ids and other keys are refused (401)', async () => {
    const target = link({ path: 'multi.txt', method: ['PUT', 'GET'], keyId: 'rot-2026' })
    assert.equal((await put(target, 'multi')).status, 200)
    assert.equal((await get(target)).body.toString(), 'multi')
    assert.equal((await get(target, {}, 'HEAD')).status, 200)
    const unknown = await get(link({ path: 'a.txt', keyId: 'nope' }))
    assert.equal(unknown.status, 401)
    assert.equal(message(unknown), 'bad signature: unknown key id')
    const stranger = await get(link({ path: 'a.txt', keyId: 'rot-2026', privateKey: generateKeyPair().private_key }))
    assert.equal(stranger.status, 401)
    assert.equal(message(stranger), 'bad signature')
    // A v1 link by the key with an id (no kid: every key is tried) still works.
    assert.equal((await get(link({ path: 'a.txt' }))).status, 200)
  })

  it('not-yet-valid and too-long links are 401 with the reason', async () => {
    const early = await get(link({ path: 'a.txt', notBefore: 60 }))
    assert.equal(early.status, 401)
    assert.match(message(early), /^link not valid before \d{4}-/)
    assert.equal((await get(link({ path: 'a.txt', notBefore: -60 }))).status, 200)
    const long = await get(link({ path: 'a.txt', expiresIn: 2 * 86_400 }))
    assert.equal(long.status, 401)
    assert.equal(message(long), "link lifetime exceeds the gateway's limit of 86400 s")
  })

  it('unknown fields in a v2 payload are refused (fail closed), with the field named', async () => {
    // signPayload writes only the fields it knows: sign these bytes as they are.
    const bytes = Buffer.from(JSON.stringify({ v: 2, exp: Math.floor(Date.now() / 1000) + 60, m: 'GET', b: 'local', p: 'a.txt', scope: 'all' }))
    const sig = `${bytes.toString('base64url')}.${Buffer.from(sign(bytes, decodeBase64Url(rotated.private_key)!)).toString('base64url')}`
    const res = await get(`/local/a.txt?sig=${sig}`)
    assert.equal(res.status, 401)
    assert.equal(message(res), 'malformed payload: unknown field "scope"')
  })

  it('ip: the peer, or behind a trusted proxy the right-most untrusted X-Forwarded-For entry', async () => {
    const target = link({ path: 'a.txt', ip: '203.0.113.0/24' })
    assert.equal((await get(target, { 'X-Forwarded-For': '203.0.113.9' })).status, 200)
    assert.equal((await get(target, { 'X-Forwarded-For': '198.51.100.7, 203.0.113.9' })).status, 200)
    // A client cannot add its way in: the proxy appends the real address last.
    const spoofed = await get(target, { 'X-Forwarded-For': '203.0.113.9, 198.51.100.7' })
    assert.equal(spoofed.status, 403)
    assert.equal(message(spoofed), 'link is for client address 203.0.113.0/24 only')
    // No header: the client is the peer (127.0.0.1), not in the range.
    assert.equal((await get(target)).status, 403)
    assert.equal((await get(link({ path: 'a.txt', ip: '127.0.0.1' }))).status, 200)
    assert.equal((await get(link({ path: 'a.txt', ip: '2001:db8::/32' }), { 'X-Forwarded-For': '2001:db8::42' })).status, 200)
  })

  it('ms: 413 by Content-Length before the body is read', async () => {
    const target = link({ path: 'keep.txt', method: 'PUT', maxSize: 10 })
    const raw = await connectRaw(gw.url)
    try {
      raw.socket.write(`PUT ${target} HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n`)
      // Answered with no body byte sent at all.
      await within(new Promise<void>((resolve) => raw.socket.once('data', () => resolve())), 3000, undefined)
      const head = parseHead(raw.received())
      assert.equal(head?.status, 413)
      assert.match(raw.received(), /this link's limit of 10 bytes/)
    } finally {
      raw.destroy()
    }
    assert.equal(await readFile(path.join(root, 'keep.txt'), 'utf8'), 'original')
    assert.equal((await put(target, '0123456789')).status, 200)
    assert.equal(await readFile(path.join(root, 'keep.txt'), 'utf8'), '0123456789')
  })

  it('ms: 413 during a chunked body, and the object is not replaced', async () => {
    await writeFile(path.join(root, 'chunked.txt'), 'original')
    const target = link({ path: 'chunked.txt', method: 'PUT', maxSize: 10 })
    const raw = await connectRaw(gw.url)
    try {
      raw.socket.write(`PUT ${target} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n`)
      raw.socket.write('6\r\nghijkl\r\n')
      await within(raw.closed, 3000, 'open')
      assert.equal(parseHead(raw.received())?.status, 413)
    } finally {
      raw.destroy()
    }
    assert.equal(await readFile(path.join(root, 'chunked.txt'), 'utf8'), 'original')
    // Through a bearer token the server's own (larger) limit applies.
    assert.equal((await put('/local/chunked.txt', 'abcdefghijkl', { Authorization: `Bearer ${BEARER}` })).status, 200)
  })

  it('ct: the upload must declare the link’s Content-Type (415 otherwise)', async () => {
    const target = link({ path: 'pic.png', method: 'PUT', contentType: 'image/png' })
    for (const [type, status] of [['text/plain', 415], [undefined, 415], ['image/png', 200], ['IMAGE/PNG; q=1', 200]] as const) {
      const res = await put(target, 'png!', type ? { 'Content-Type': type } : {})
      assert.equal(res.status, status, `${type}: ${res.body}`)
      if (status === 415) assert.equal(message(res), 'this link accepts Content-Type image/png only')
    }
    const strict = link({ path: 'doc.txt', method: 'PUT', contentType: 'text/plain; charset=utf-8' })
    assert.equal((await put(strict, 'x', { 'Content-Type': 'text/plain' })).status, 415)
    assert.equal((await put(strict, 'x', { 'Content-Type': 'text/plain;charset=UTF-8' })).status, 200)
  })

  it('fn/disp: Content-Disposition per link, never carried into the shared cached answer', async () => {
    await writeFile(path.join(root, 'report.bin'), 'report bytes')
    const named = link({ path: 'report.bin', filename: 'Résumé "final" — 2026.pdf' })
    const expected = `attachment; filename="Resume \\"final\\" ? 2026.pdf"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22%20%E2%80%94%202026.pdf`
    for (let i = 0; i < 2; i++) {
      // The second read is a memory hit: the header is still this link's.
      const res = await get(named)
      assert.equal(res.status, 200)
      assert.equal(res.headers['content-disposition'], expected)
      if (i === 1) assert.equal(res.headers['x-cg-status'], 'hit=1')
    }
    assert.equal((await get(named, {}, 'HEAD')).headers['content-disposition'], expected)
    assert.equal((await get(named, { Range: 'bytes=0-3' })).headers['content-disposition'], expected)
    const inline = await get(link({ path: 'report.bin', disposition: 'inline' }))
    assert.equal(inline.headers['content-disposition'], 'inline')
    assert.equal((await get(link({ path: 'report.bin', filename: 'a.txt', disposition: 'inline' }))).headers['content-disposition'], 'inline; filename="a.txt"')
    for (const plain of [await get(link({ path: 'report.bin' })), await get('/local/report.bin', { Authorization: `Bearer ${BEARER}` })]) {
      assert.equal(plain.status, 200)
      assert.equal(plain.headers['content-disposition'], undefined)
    }
  })

  it('tokens: in scope 200, out of scope 403 naming the token id (never the token), unknown 401; counted by token id', async () => {
    const { mkdir } = await import('node:fs/promises')
    await mkdir(path.join(root, 'builds'), { recursive: true })
    await writeFile(path.join(root, 'builds', '1.zip'), 'zip')
    const as = (token: string) => ({ Authorization: `Bearer ${token}` })
    assert.equal((await get('/local/builds/1.zip', as(ci))).body.toString(), 'zip')
    assert.equal((await get('/local/builds/1.zip', as(ci), 'HEAD')).status, 200)
    const refusals: [() => Promise<{ status: number; body: Buffer }>, number, string][] = [
      [() => put('/local/builds/2.zip', 'x', as(ci)), 403, 'token ci may not PUT'],
      [() => get('/other/builds/1.zip', as(ci)), 403, 'token ci may not use bucket other'],
      [() => get('/local/a.txt', as(ci)), 403, 'token ci is for prefix builds/ only'],
      [() => get('/local/a.txt', as(`${ci}x`)), 401, 'bad token'],
    ]
    for (const [send, status, text] of refusals) {
      const res = await send()
      assert.equal(res.status, status)
      assert.equal(message(res), text)
      assert.ok(!res.body.toString().includes(ci))
    }
    assert.equal((await put('/other/anything.txt', 'up', as(uploader))).status, 200)
    assert.equal((await get('/local/a.txt', as(BEARER))).status, 200) // the plain bearer_token still works
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    assert.match(metrics, /cachegate_auth_accepted_total\{kind="bearer",token="ci"\} 2/)
    assert.match(metrics, /cachegate_auth_forbidden_total\{kind="bearer",token="ci"\} 3/)
    assert.match(metrics, /cachegate_auth_accepted_total\{kind="bearer",token="up"\} 1/)
    assert.match(metrics, /cachegate_auth_accepted_total\{kind="presigned",token=""\} \d+/)
    assert.ok(!metrics.includes(ci))
  })
})
