/**
 * The CLI side of scoped auth: `sign` with every version 2 flag against a running gateway,
 * `inspect` explaining why a link does not verify, and `token new` printing a token that works.
 */
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parse as parseYaml, stringify as toYaml } from 'yaml'
import { generateKeyPair } from '../src/auth/keys.ts'
import { presign } from '../src/auth/presign.ts'
import { runCli, spawnCli, tempDir } from './helpers/gateway.ts'

const LISTENING = /"msg":"listening","url":"(http:\/\/[^"]+)"/

describe('cachegate sign (version 2), inspect and token new', () => {
  let dir: string
  let data: string
  let configFile: string
  let base: string
  let server: Awaited<ReturnType<typeof spawnCli>>
  const signer = generateKeyPair()
  const rotatedOut = generateKeyPair()
  let token: string

  before(async () => {
    dir = await tempDir()
    data = path.join(dir, 'data')
    await mkdir(path.join(data, 'up'), { recursive: true })
    await writeFile(path.join(data, 'a.txt'), 'alpha')
    // `token new` first: its entry goes into the config the gateway starts with.
    const minted = await runCli(['token', 'new', '--id', 'ci', '--buckets', 'files', '--methods', 'get', '--prefix', 'up/'])
    assert.equal(minted.code, 0, minted.stderr)
    token = /^token: (cg_[A-Za-z0-9_-]{43})$/m.exec(minted.stdout)![1]!
    const entries = parseYaml(minted.stdout.replace(/^token: .*$/m, '')) as unknown[]
    assert.deepEqual(entries, [{ id: 'ci', sha256: (entries[0] as { sha256: string }).sha256, buckets: ['files'], methods: ['GET'], prefix: 'up/' }])
    assert.ok(!minted.stdout.split('\n').slice(1).join('\n').includes(token), 'the token is printed once, not in the entry')
    configFile = path.join(dir, 'config.yaml')
    await writeFile(
      configFile,
      toYaml({
        listen: '127.0.0.1:0',
        trust_proxy: ['127.0.0.1'],
        auth: { private_key: signer.private_key, keys: [{ id: 'old', public_key: rotatedOut.public_key }, { id: 'k1', public_key: signer.public_key }], tokens: entries, max_link_lifetime: '1h' },
        stores: { files: { type: 'fs', root: data } },
      }),
    )
    server = await spawnCli(['--config', configFile], LISTENING)
    base = server.match[1]!
  })
  after(() => server?.stop())

  const sign = async (...args: string[]) => {
    const res = await runCli(['sign', '--config', configFile, '--base-url', base, '--bucket', 'files', ...args])
    assert.equal(res.code, 0, res.stderr)
    return res.stdout.trim()
  }
  const inspect = (url: string, ...args: string[]) => runCli(['inspect', url, '--config', configFile, ...args])

  it('a link with every flag round-trips through the gateway', async () => {
    const url = await sign(
      '--prefix', 'up/', '--path', 'up/ré sumé.txt', '--method', 'PUT', '--method', 'GET', '--key-id', 'k1', '--ip', '203.0.113.0/24',
      '--max-size', '16', '--content-type', 'text/plain', '--filename', 'ré "x".txt', '--inline', '--not-before=-60', '--expires-in', '10m',
    )
    const payload = JSON.parse(Buffer.from(new URL(url).searchParams.get('sig')!.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>
    assert.deepEqual(Object.keys(payload), ['v', 'exp', 'nbf', 'm', 'b', 'pp', 'kid', 'ip', 'ms', 'ct', 'fn', 'disp'])
    const from = { 'X-Forwarded-For': '203.0.113.20' }
    const put = (body: string, type = 'text/plain', headers: Record<string, string> = from) => fetch(url, { method: 'PUT', body, headers: { 'Content-Type': type, ...headers } })
    assert.equal((await put('0123456789abcdef')).status, 200)
    assert.equal((await put('0123456789abcdefg')).status, 413)
    assert.equal((await put('hello', 'text/html')).status, 415)
    assert.equal((await put('hello', 'text/plain', {})).status, 403) // the peer 127.0.0.1 is not in 203.0.113.0/24
    const got = await fetch(url, { headers: from })
    assert.equal(got.status, 200)
    assert.equal(await got.text(), '0123456789abcdef')
    assert.equal(got.headers.get('content-disposition'), `inline; filename="re \\"x\\".txt"; filename*=UTF-8''r%C3%A9%20%22x%22.txt`)
    assert.equal(await readFile(path.join(data, 'up', 'ré sumé.txt'), 'utf8'), '0123456789abcdef')
    const inspected = await inspect(url, '--client', '203.0.113.20')
    assert.equal(inspected.code, 0, inspected.stdout + inspected.stderr)
    assert.match(inspected.stdout, /^version: 2 /m)
    assert.match(inspected.stdout, /verifies now for PUT/)
  })

  it('--key-id is checked against the config; bad flags are usage errors', async () => {
    for (const args of [['inspect', '--help'], ['token', '--help'], ['token', 'new', '--help']]) {
      const res = await runCli(args)
      assert.equal(res.code, 0)
      assert.match(res.stdout, /^Usage: cachegate (inspect|token)/)
    }
    for (const args of [['inspect'], ['inspect', 'not a url'], ['token'], ['token', 'old']]) assert.equal((await runCli(args)).code, 2, args.join(' '))
    const wrong = await runCli(['sign', '--config', configFile, '--bucket', 'files', '--path', 'a.txt', '--key-id', 'old'])
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /not the private half of key "old"/)
    const missing = await runCli(['sign', '--config', configFile, '--bucket', 'files', '--path', 'a.txt', '--key-id', 'nope'])
    assert.match(missing.stderr, /no key with id "nope"/)
    for (const [args, pattern] of [
      [['--prefix', 'up'], /pp must be a non-empty prefix ending with "\/"/],
      [['--path', 'a.txt', '--max-size', '10'], /ms and ct are for PUT links only/],
      [['--path', 'a.txt', '--max-size', 'lots', '--method', 'PUT'], /--max-size must be a size/],
      [['--path', 'a.txt', '--method', 'DELETE'], /--method must be one of GET, HEAD, PUT/],
      [['--path', 'a.txt', '--ip', 'somewhere'], /ip is not an address or CIDR/],
    ] as const) {
      const res = await runCli(['sign', '--config', configFile, '--bucket', 'files', ...args])
      assert.equal(res.code, 2, res.stderr)
      assert.match(res.stderr, pattern)
    }
  })

  it('inspect explains an expired link, a wrong key, a scope, an unknown key id and a lifetime', async () => {
    const cases: [string, string[], RegExp][] = [
      [presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: signer.private_key, now: Date.now() - 7200_000, expiresIn: 60 }), [], /refused \(401\): expired \(expired at \d{4}-/],
      [presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: generateKeyPair().private_key }), [], /refused \(401\): wrong key: not signed by any key of this config/],
      [presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: signer.private_key, keyId: 'gone' }), [], /refused \(401\): wrong key: no key with id gone/],
      [presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: signer.private_key, keyId: 'old' }), [], /refused \(401\): wrong key: not signed by key old/],
      [presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: signer.private_key }), ['--method', 'PUT'], /refused \(401\): method mismatch/],
      [presign({ baseUrl: base, bucket: 'files', prefix: 'up/', path: 'up/x', privateKey: signer.private_key }).replace('/up/x?', '/a.txt?'), [], /refused \(403, scope\): link is for prefix up\/ only/],
      [presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: signer.private_key, ip: '10.0.0.0/8' }), [], /link is for client address 10\.0\.0\.0\/8 only: give --client/],
      [presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: signer.private_key, expiresIn: 7200 }), [], /refused \(401\): link lifetime exceeds the gateway's limit of 3600 s/],
    ]
    for (const [url, args, pattern] of cases) {
      const res = await inspect(url, ...args)
      assert.equal(res.code, 1, `${url}\n${res.stdout}${res.stderr}`)
      assert.match(res.stdout, pattern)
      // What inspect says is what the gateway does.
      if (args.length === 0 && !/give --client/.test(pattern.source)) assert.notEqual((await fetch(url)).status, 200)
    }
    const good = await inspect(presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: signer.private_key }))
    assert.equal(good.code, 0)
    assert.match(good.stdout, /^version: 1 \(Cachegate's format\)$/m)
    assert.match(good.stdout, /verifies now for GET/)
    const bare = await runCli(['inspect', presign({ baseUrl: base, bucket: 'files', path: 'a.txt', privateKey: signer.private_key })])
    assert.equal(bare.code, 0)
    assert.match(bare.stdout, /signature: not checked/)
  })

  it('the token from token new works within its scope (403 outside it)', async () => {
    await writeFile(path.join(data, 'up', 'build.zip'), 'zip')
    const auth = { Authorization: `Bearer ${token}` }
    const ok = await fetch(`${base}/files/up/build.zip`, { headers: auth })
    assert.equal(ok.status, 200)
    assert.equal(await ok.text(), 'zip')
    const outside = await fetch(`${base}/files/a.txt`, { headers: auth })
    assert.equal(outside.status, 403)
    assert.deepEqual(await outside.json(), { error: 'forbidden', message: 'token ci is for prefix up/ only' })
    assert.equal((await fetch(`${base}/files/up/new.zip`, { method: 'PUT', body: 'x', headers: auth })).status, 403)
    assert.equal((await fetch(`${base}/files/up/build.zip`, { headers: { Authorization: `Bearer ${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}` } })).status, 401)
    const bad = await runCli(['token', 'new', '--id', 'x', '--buckets', 'files', '--methods', 'GET,DELETE'])
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /unknown DELETE/)
  })
})
