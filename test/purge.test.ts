/**
 * `POST /_admin/purge` and `cachegate purge`: by path and by prefix, in every tier (memory,
 * disk, pages, metadata records, negative entries); refused without admin auth; bad bodies
 * answered 400/413 saying what is wrong.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createAdminAuth } from '../src/http/admin/auth.ts'
import { BEARER, type TestGateway, cleanEnv, runCli, startGateway, tempDir } from './helpers/gateway.ts'

const auth = { Authorization: `Bearer ${BEARER}` }
const ADMIN_TOKEN = 'admin-token-for-tests-0123456789'
const ADMIN_SHA = createHash('sha256').update(ADMIN_TOKEN).digest('hex')
const KiB = 1024

async function status(gw: TestGateway, key: string): Promise<string | null> {
  const r = await fetch(`${gw.url}/local/${key}`, { headers: auth })
  await r.arrayBuffer()
  assert.equal(r.status, 200, key)
  return r.headers.get('x-cg-status')
}

/** `token: null` sends no Authorization header. */
function purge(gw: TestGateway, body: unknown, token: string | null = ADMIN_TOKEN, method = 'POST') {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' }
  if (token !== null) headers.Authorization = `Bearer ${token}`
  return fetch(`${gw.url}/_admin/purge`, { method, headers, body: method === 'POST' ? (typeof body === 'string' ? body : JSON.stringify(body)) : undefined })
}

async function write(root: string, key: string, bytes: Buffer): Promise<void> {
  await mkdir(path.dirname(path.join(root, key)), { recursive: true })
  await writeFile(path.join(root, key), bytes)
}

describe('purge', () => {
  let root: string
  let gw: TestGateway
  const keys = ['a/1.bin', 'a/2.bin', 'ab.bin', 'b/1.bin']

  before(async () => {
    root = await tempDir()
    for (const key of keys) await write(root, key, randomBytes(2 * KiB))
    await write(root, 'big/large.bin', randomBytes(100 * KiB))
    gw = await startGateway({
      root,
      raw: {
        auth: { bearer_token: BEARER, admin_token_sha256: ADMIN_SHA },
        cache: { max_memory: '4MiB', max_object_size: '64KiB', page_size: '16KiB', max_disk: '16MiB', disk_path: await tempDir('cachegate-purge-disk-'), negative_ttl: '1h' },
      },
    })
  })
  after(async () => {
    await gw?.close()
  })

  const warm = async () => {
    for (const key of keys) await status(gw, key)
    for (const key of keys) assert.equal(await status(gw, key), 'hit=1')
  }

  it('by path: the object is dropped from memory and disk; others stay', async () => {
    await warm()
    const r = await purge(gw, { bucket: 'local', path: 'a/1.bin' })
    assert.equal(r.status, 200)
    assert.deepEqual(await r.json(), { bucket: 'local', path: 'a/1.bin', dropped: 1 })
    assert.equal(await status(gw, 'a/1.bin'), 'hit=0', 'in neither tier any more')
    assert.equal(await status(gw, 'a/2.bin'), 'hit=1')
    const again = await purge(gw, { bucket: 'local', path: 'nothing/here.bin' })
    assert.equal(((await again.json()) as { dropped: number }).dropped, 0)
  })

  it('by prefix: every object whose key starts with it, and nothing else', async () => {
    await warm()
    const r = await purge(gw, { bucket: 'local', prefix: 'a/' })
    assert.equal(r.status, 200)
    assert.equal(((await r.json()) as { dropped: number }).dropped, 2)
    assert.equal(await status(gw, 'a/1.bin'), 'hit=0')
    assert.equal(await status(gw, 'a/2.bin'), 'hit=0')
    assert.equal(await status(gw, 'ab.bin'), 'hit=1')
    assert.equal(await status(gw, 'b/1.bin'), 'hit=1')
    const metrics = await (await fetch(`${gw.url}/metrics`)).text()
    assert.match(metrics, /^cachegate_cache_purged_entries_total [1-9]/m)
  })

  it('a large object: its pages and metadata record go too', async () => {
    const range = { ...auth, Range: 'bytes=0-40000' }
    await (await fetch(`${gw.url}/local/big/large.bin`, { headers: range })).arrayBuffer()
    const cached = await fetch(`${gw.url}/local/big/large.bin`, { headers: range })
    await cached.arrayBuffer()
    assert.equal(cached.headers.get('x-cg-status'), 'hit=1')
    const r = await purge(gw, { bucket: 'local', path: 'big/large.bin' })
    // Pages 0-2 and the record (memory and disk share keys).
    assert.equal(((await r.json()) as { dropped: number }).dropped, 4)
    const after = await fetch(`${gw.url}/local/big/large.bin`, { headers: range })
    await after.arrayBuffer()
    assert.equal(after.headers.get('x-cg-status'), 'hit=0')
  })

  it('negative entries: a purged 404 is looked up again', async () => {
    assert.equal((await fetch(`${gw.url}/local/neg/later.bin`, { headers: auth })).status, 404)
    await write(root, 'neg/later.bin', randomBytes(100))
    assert.equal((await fetch(`${gw.url}/local/neg/later.bin`, { headers: auth })).status, 404, 'remembered for negative_ttl')
    const r = await purge(gw, { bucket: 'local', prefix: 'neg/' })
    assert.equal(((await r.json()) as { dropped: number }).dropped, 1)
    assert.equal((await fetch(`${gw.url}/local/neg/later.bin`, { headers: auth })).status, 200)
  })

  it('an empty prefix purges nothing unless "all": true is sent', async () => {
    await warm()
    const refused = await purge(gw, { bucket: 'local', prefix: '' })
    assert.equal(refused.status, 400)
    assert.match(((await refused.json()) as { message: string }).message, /"all": true/)
    assert.equal(await status(gw, 'b/1.bin'), 'hit=1')
    const all = await purge(gw, { bucket: 'local', prefix: '', all: true })
    assert.equal(all.status, 200)
    assert.ok(((await all.json()) as { dropped: number }).dropped >= keys.length)
    for (const key of keys) assert.equal(await status(gw, key), 'hit=0')
  })

  it('bad bodies: 400 saying which problem, 413 over 64 KiB', async () => {
    const cases: [unknown, RegExp][] = [
      ['{not json', /not JSON/],
      [[1, 2], /JSON object/],
      [{ bucket: 'nope', path: 'a' }, /unknown bucket "nope"/],
      [{ bucket: 'local', path: 'a', prefix: 'b' }, /exactly one of "path" and "prefix"/],
      [{ bucket: 'local' }, /exactly one of "path" and "prefix"/],
      [{ path: 'a' }, /"bucket"/],
      [{ bucket: 'local', path: '../etc/passwd' }, /not a valid object key/],
      [{ bucket: 'local', prefix: 'x', extra: 1 }, /unknown field "extra"/],
    ]
    for (const [body, message] of cases) {
      const r = await purge(gw, body)
      assert.equal(r.status, 400, JSON.stringify(body))
      assert.match(((await r.json()) as { message: string }).message, message)
    }
    const huge = await purge(gw, { bucket: 'local', path: 'a'.repeat(70 * KiB) })
    assert.equal(huge.status, 413)
  })

  it('refused without the admin token (401), and only POST (405)', async () => {
    assert.equal((await purge(gw, { bucket: 'local', path: 'a/1.bin' }, null)).status, 401)
    assert.equal((await purge(gw, { bucket: 'local', path: 'a/1.bin' }, 'wrong-token-wrong-token')).status, 401)
    assert.equal((await purge(gw, { bucket: 'local', path: 'a/1.bin' }, BEARER)).status, 401, 'the bearer token is not an admin token')
    const get = await purge(gw, undefined, ADMIN_TOKEN, 'GET')
    assert.equal(get.status, 405)
    assert.equal(get.headers.get('allow'), 'POST')
    assert.equal((await fetch(`${gw.url}/_admin/other`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).status, 404)
  })

  it('cachegate purge: by path and prefix, the token from the environment or a file, never argv', async () => {
    await warm()
    const env = cleanEnv({ CACHEGATE_ADMIN_TOKEN: ADMIN_TOKEN })
    const byPath = await runCli(['purge', '--url', gw.url, '--bucket', 'local', '--path', 'b/1.bin'], { env })
    assert.equal(byPath.code, 0, byPath.stderr)
    assert.equal((JSON.parse(byPath.stdout) as { dropped: number }).dropped, 1)
    assert.equal(await status(gw, 'b/1.bin'), 'hit=0')

    const tokenFile = path.join(await tempDir(), 'admin.token')
    await writeFile(tokenFile, `${ADMIN_TOKEN}\n`, { mode: 0o600 })
    const byPrefix = await runCli(['purge', '--url', gw.url, '--bucket', 'local', '--prefix', 'a/', '--token-file', tokenFile], { env: cleanEnv() })
    assert.equal(byPrefix.code, 0, byPrefix.stderr)
    assert.equal((JSON.parse(byPrefix.stdout) as { dropped: number }).dropped, 2)

    const noToken = await runCli(['purge', '--url', gw.url, '--bucket', 'local', '--path', 'x'], { env: cleanEnv() })
    assert.equal(noToken.code, 2)
    assert.match(noToken.stderr, /CACHEGATE_ADMIN_TOKEN/)
    const wrong = await runCli(['purge', '--url', gw.url, '--bucket', 'local', '--path', 'x'], { env: cleanEnv({ CACHEGATE_ADMIN_TOKEN: 'nope-nope-nope' }) })
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /401/)
    const both = await runCli(['purge', '--url', gw.url, '--bucket', 'local', '--path', 'x', '--prefix', 'y'], { env })
    assert.equal(both.code, 2)
    const all = await runCli(['purge', '--url', gw.url, '--bucket', 'local', '--all'], { env })
    assert.equal(all.code, 0, all.stderr)
  })
})

describe('purge without admin auth', () => {
  it('the endpoint does not exist (404)', async () => {
    const gw = await startGateway()
    try {
      const r = await fetch(`${gw.url}/_admin/purge`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ bucket: 'local', path: 'a' }) })
      assert.equal(r.status, 404)
    } finally {
      await gw.close()
    }
  })
})

describe('createAdminAuth', () => {
  it('accepts the token whose SHA-256 is configured, and nothing else', () => {
    assert.equal(createAdminAuth({}), undefined)
    const admin = createAdminAuth({ adminTokenSha256: ADMIN_SHA.toUpperCase() })!
    assert.equal(admin(`Bearer ${ADMIN_TOKEN}`)?.id, 'admin_token')
    assert.equal(admin(`bearer ${ADMIN_TOKEN}`)?.id, 'admin_token')
    admin(`Bearer ${ADMIN_TOKEN}`)!.check('any', '')
    assert.equal(admin(undefined), undefined)
    assert.equal(admin(ADMIN_TOKEN), undefined)
    assert.equal(admin(`Bearer ${ADMIN_TOKEN}x`), undefined)
    assert.equal(admin(`Bearer ${ADMIN_SHA}`), undefined, 'the hash itself is no token')
    assert.throws(() => createAdminAuth({ adminTokenSha256: 'abc' }), TypeError)
  })
})

describe('purge with scoped auth.tokens', () => {
  const OPS = 'cg_ops-token-for-tests-0123456789abcdef'
  const BUILDS = 'cg_builds-admin-token-for-tests-0123456'
  const READER = 'cg_reader-token-for-tests-0123456789ab'
  const tokens = [
    { id: 'ops', sha256: createHash('sha256').update(OPS).digest('hex'), buckets: ['*'], methods: ['ADMIN'] },
    { id: 'builds', sha256: createHash('sha256').update(BUILDS).digest('hex'), buckets: ['local'], methods: ['GET', 'ADMIN'], prefix: 'builds/' },
    { id: 'reader', sha256: createHash('sha256').update(READER).digest('hex'), buckets: ['local'], methods: ['GET', 'HEAD'] },
  ]

  it('a token with ADMIN purges within its scope (403 outside it); one without ADMIN is refused (401)', async () => {
    const root = await tempDir()
    await write(root, 'builds/1.bin', randomBytes(KiB))
    await write(root, 'other/1.bin', randomBytes(KiB))
    const gw = await startGateway({ root, raw: { auth: { bearer_token: BEARER, tokens } } })
    try {
      await status(gw, 'builds/1.bin')
      await status(gw, 'other/1.bin')
      assert.equal((await purge(gw, { bucket: 'local', path: 'builds/1.bin' }, READER)).status, 401, 'GET-only token is no admin')
      const outside = await purge(gw, { bucket: 'local', path: 'other/1.bin' }, BUILDS)
      assert.equal(outside.status, 403)
      assert.match(((await outside.json()) as { message: string }).message, /token builds is for prefix builds\/ only/)
      assert.equal((await purge(gw, { bucket: 'local', prefix: '', all: true }, BUILDS)).status, 403, 'a prefix-scoped admin cannot purge the whole bucket')
      const inside = await purge(gw, { bucket: 'local', prefix: 'builds/' }, BUILDS)
      assert.equal(inside.status, 200)
      assert.equal(((await inside.json()) as { dropped: number }).dropped, 1)
      assert.match((await status(gw, 'builds/1.bin')) ?? '', /hit=0/)
      assert.match((await status(gw, 'other/1.bin')) ?? '', /hit=1/, 'the refused purge dropped nothing')
      const all = await purge(gw, { bucket: 'local', prefix: '', all: true }, OPS)
      assert.equal(all.status, 200, 'an unscoped ADMIN token may purge a whole bucket')
    } finally {
      await gw.close()
    }
  })
})
