import assert from 'node:assert/strict'
import { access, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { createFsStore } from '../src/stores/fs.ts'
import type { Store } from '../src/stores/types.ts'
import { BEARER, type TestGateway, rawRequest, startGateway, tempDir } from './helpers/gateway.ts'

/** Wraps a store and counts every call that reaches it. */
function counting(store: Store): Store & { calls: number } {
  const counted = {
    calls: 0,
    type: store.type,
    id: store.id,
    head: (...args: Parameters<Store['head']>) => (counted.calls++, store.head(...args)),
    get: (...args: Parameters<Store['get']>) => (counted.calls++, store.get(...args)),
    put: (...args: Parameters<Store['put']>) => (counted.calls++, store.put(...args)),
  }
  return counted
}

describe('path safety: keys never escape the store root', () => {
  let gw: TestGateway
  let parent: string
  let root: string
  let outside: string
  let store: ReturnType<typeof counting>
  const auth = { Authorization: `Bearer ${BEARER}` }

  before(async () => {
    parent = await tempDir()
    root = path.join(parent, 'root')
    outside = path.join(parent, 'outside')
    await mkdir(root)
    await mkdir(outside)
    await writeFile(path.join(parent, 'secret.txt'), 'SECRET')
    await writeFile(path.join(outside, 'secret.txt'), 'SECRET')
    await writeFile(path.join(root, 'ok.txt'), 'fine')
    await symlink(outside, path.join(root, 'link'))
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'file-link.txt'))
    store = counting(createFsStore({ id: 'local', root }))
    gw = await startGateway({ root, stores: new Map([['local', store]]) })
  })
  after(() => gw.close())

  // Rejected from the request line alone: 400 before any store call.
  const rejectedUpFront = [
    '/local/../secret.txt',
    '/local/../../secret.txt',
    '/local/%2e%2e/secret.txt',
    '/local/%2E%2E/%2e%2E/secret.txt',
    '/local/.%2e/secret.txt',
    '/local/ok/%2e%2e/%2e%2e/secret.txt',
    '/local/..%2fsecret.txt',
    '/local/..%2Fsecret.txt',
    '/local/%2fetc%2fpasswd',
    '/local//etc/passwd',
    '/local/..%5csecret.txt',
    '/local/a%00b.txt',
    '/local/a%0ab.txt',
    '/local/./ok.txt',
    '/local/%2e/ok.txt',
    '/local/ok/',
    '/local/%E0%A4%A',
    '/local/%ff.txt',
  ]

  for (const target of rejectedUpFront) {
    for (const method of ['GET', 'PUT'] as const) {
      it(`${method} ${target} → 400, no store call`, async () => {
        const before = store.calls
        const res = await rawRequest(gw.url, method, target, auth, method === 'PUT' ? 'PWNED' : undefined)
        assert.equal(res.status, 400, res.body.toString())
        assert.match(JSON.parse(res.body.toString()).message, /./)
        assert.equal(store.calls, before)
      })
    }
  }

  it('a symlinked directory pointing outside the root is refused for GET and PUT', async () => {
    assert.equal((await rawRequest(gw.url, 'GET', '/local/link/secret.txt', auth)).status, 400)
    assert.equal((await rawRequest(gw.url, 'PUT', '/local/link/new.txt', auth, 'PWNED')).status, 400)
    assert.equal((await rawRequest(gw.url, 'GET', '/local/file-link.txt', auth)).status, 400)
  })

  it('a PUT below a symlinked directory creates no directory outside the root', async () => {
    const elsewhere = await tempDir('cachegate-outside-')
    await symlink(elsewhere, path.join(root, 'evil'))
    for (const key of ['evil/sub/dir/file.txt', 'evil/file.txt']) {
      const res = await rawRequest(gw.url, 'PUT', `/local/${key}`, auth, 'PWNED')
      assert.equal(res.status, 400, `PUT ${key}: ${res.body.toString()}`)
    }
    await assert.rejects(access(path.join(elsewhere, 'sub')), { code: 'ENOENT' })
    assert.deepEqual(await readdir(elsewhere), [])
    // A dangling link resolves nowhere: refused too, and its target is not created.
    await symlink(path.join(elsewhere, 'missing'), path.join(root, 'dangling'))
    const res = await rawRequest(gw.url, 'PUT', '/local/dangling/sub/file.txt', auth, 'PWNED')
    assert.equal(res.status, 400, res.body.toString())
    assert.deepEqual(await readdir(elsewhere), [])
  })

  it('a double-encoded dot segment is a literal key, not a traversal', async () => {
    const res = await rawRequest(gw.url, 'GET', '/local/%252e%252e/secret.txt', auth)
    assert.equal(res.status, 404)
  })

  it('touched no file outside the root', async () => {
    assert.deepEqual((await readdir(parent)).sort(), ['outside', 'root', 'secret.txt'])
    assert.deepEqual(await readdir(outside), ['secret.txt'])
    assert.equal(await readFile(path.join(parent, 'secret.txt'), 'utf8'), 'SECRET')
    assert.equal(await readFile(path.join(outside, 'secret.txt'), 'utf8'), 'SECRET')
  })

  it('still serves a normal key', async () => {
    const res = await rawRequest(gw.url, 'GET', '/local/ok.txt', auth)
    assert.equal(res.status, 200)
    assert.equal(res.body.toString(), 'fine')
  })
})
