import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, it } from 'node:test'
import { parse as parseYaml, stringify as toYaml } from 'yaml'
import * as ed from '@noble/ed25519'
import { decodeBase64Url, isUsablePublicKey, publicKeyOf } from '../src/auth/keys.ts'
import { cleanEnv, runCli, spawnCli, tempDir } from './helpers/gateway.ts'

const LISTENING = /"msg":"listening","url":"(http:\/\/[^"]+)"/

async function keygen(dir: string, name = 'auth.keys.yaml') {
  const file = path.join(dir, name)
  const res = await runCli(['keygen', '--out', file])
  assert.equal(res.code, 0, res.stderr)
  const doc = parseYaml(await readFile(file, 'utf8')) as { auth: { public_key: string; private_key: string } }
  return { file, ...doc.auth }
}

describe('cachegate keygen', () => {
  it('writes a valid Ed25519 pair, mode 0600', async () => {
    const dir = await tempDir()
    const keys = await keygen(dir)
    assert.match(keys.public_key, /^[A-Za-z0-9_-]{43}$/)
    assert.match(keys.private_key, /^[A-Za-z0-9_-]{43}$/)
    assert.equal(publicKeyOf(keys.private_key), keys.public_key)
    assert.ok(isUsablePublicKey(keys.public_key))
    assert.equal((await stat(keys.file)).mode & 0o777, 0o600)
  })

  it('refuses to overwrite without --force, and overwrites with it', async () => {
    const dir = await tempDir()
    const first = await keygen(dir)
    const again = await runCli(['keygen', '--out', first.file])
    assert.equal(again.code, 1)
    assert.match(again.stderr, /already exists.*--force/)
    const unchanged = parseYaml(await readFile(first.file, 'utf8')).auth.private_key
    assert.equal(unchanged, first.private_key)
    const forced = await runCli(['keygen', '--out', first.file, '--force'])
    assert.equal(forced.code, 0, forced.stderr)
    const replaced = parseYaml(await readFile(first.file, 'utf8')).auth
    assert.notEqual(replaced.private_key, first.private_key)
    assert.equal((await stat(first.file)).mode & 0o777, 0o600)
  })

  it('every subcommand has --help; bad usage exits 2', async () => {
    for (const args of [['--help'], ['keygen', '--help'], ['sign', '--help'], ['purge', '--help']]) {
      const res = await runCli(args)
      assert.equal(res.code, 0)
      assert.match(res.stdout, /^Usage: cachegate/)
    }
    assert.equal((await runCli(['keygen'])).code, 2)
    assert.equal((await runCli(['frobnicate'])).code, 2)
    assert.equal((await runCli(['sign', '--bucket', 'b'])).code, 2)
    assert.equal((await runCli(['purge', '--bucket', 'b', '--path', 'p'])).code, 2)
  })
})

describe('cachegate sign and serve', () => {
  it("sign's URL (from --config and from --keys) is accepted by a running server", async () => {
    const dir = await tempDir()
    const keys = await keygen(dir)
    const data = path.join(dir, 'data')
    const configFile = path.join(dir, 'config.yaml')
    await writeFile(configFile, toYaml({ listen: '127.0.0.1:0', auth: { public_key: keys.public_key, private_key: keys.private_key }, stores: { files: { type: 'fs', root: data } } }))
    const server = await spawnCli(['--config', configFile], LISTENING)
    try {
      const base = server.match[1]!
      await (await import('node:fs/promises')).mkdir(data, { recursive: true })
      await writeFile(path.join(data, 'report 1.txt'), 'signed bytes')
      for (const source of [['--config', configFile], ['--keys', keys.file]]) {
        const res = await runCli(['sign', '--bucket', 'files', '--path', 'report 1.txt', '--expires-in', '60', '--base-url', base, ...source])
        assert.equal(res.code, 0, res.stderr)
        const url = res.stdout.trim()
        const got = await fetch(url)
        assert.equal(got.status, 200)
        assert.equal(await got.text(), 'signed bytes')
        // The same link with another method is refused.
        assert.equal((await fetch(url, { method: 'PUT', body: 'x' })).status, 401)
      }
    } finally {
      await server.stop()
    }
  })

  it('--config env with a whole YAML document in CACHEGATE_CONFIG', async () => {
    const dir = await tempDir()
    await writeFile(path.join(dir, 'x.bin'), 'env-yaml')
    const yaml = toYaml({ listen: '127.0.0.1:0', auth: { bearer_token: 'env-yaml-token-0123456789' }, stores: { env: { type: 'fs', root: dir } } })
    const server = await spawnCli(['--config', 'env'], LISTENING, { env: cleanEnv({ CACHEGATE_CONFIG: yaml }) })
    try {
      const res = await fetch(`${server.match[1]}/env/x.bin`, { headers: { Authorization: 'Bearer env-yaml-token-0123456789' } })
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'env-yaml')
    } finally {
      await server.stop()
    }
  })

  it('--config env with flat CACHEGATE__SECTION__KEY variables (sections case-insensitive, store ids verbatim)', async () => {
    const dir = await tempDir()
    await writeFile(path.join(dir, 'y.bin'), 'env-flat')
    const env = cleanEnv({
      CACHEGATE__LISTEN: '127.0.0.1:0',
      CACHEGATE__AUTH__BEARER_TOKEN: 'env-flat-token-0123456789',
      CACHEGATE__AUTH__PUBLIC_KEY: '', // empty means unset
      CACHEGATE__Cache__Max_Memory: '16MiB',
      CACHEGATE__CACHE__MAX_OBJECT_SIZE: '1MiB',
      CACHEGATE__STORES__MixedCase__TYPE: 'fs',
      CACHEGATE__STORES__MixedCase__ROOT: dir,
    })
    const server = await spawnCli(['--config', 'env'], LISTENING, { env })
    try {
      const res = await fetch(`${server.match[1]}/MixedCase/y.bin`, { headers: { Authorization: 'Bearer env-flat-token-0123456789' } })
      assert.equal(res.status, 200)
      assert.equal(await res.text(), 'env-flat')
      const stats = (await (await fetch(`${server.match[1]}/stats`)).json()) as { cache: { tiers: { memory: { max_bytes: number } } } }
      assert.equal(stats.cache.tiers.memory.max_bytes, 16 * 2 ** 20)
    } finally {
      await server.stop()
    }
  })

  it('a broken config lists every problem with its key path, exits non-zero, no stack trace, no secret', async () => {
    const dir = await tempDir()
    const file = path.join(dir, 'bad.yaml')
    const secret = 'TOP-SECRET-VALUE-1234567890'
    await writeFile(
      file,
      toYaml({
        listen: 'nowhere',
        auth: { public_key: secret, bearer_token: 'short' },
        cache: { max_memory: 'lots', max_disk: '2 parsecs' },
        sentry: { traces_sample_rate: 7 },
        stores: { 'media-s3': { type: 's3', secret_key: secret, access_key: 'AKIA' }, blob: { type: 'azure', container: 'c' }, bad: { type: 'gcs' } },
        surprise: true,
      }),
    )
    const res = await runCli(['--config', file])
    assert.equal(res.code, 1)
    for (const expected of [
      'listen:',
      'auth.public_key:',
      'auth.bearer_token:',
      'cache.max_memory:',
      'cache.max_disk:',
      'sentry.traces_sample_rate:',
      'stores.media-s3.bucket: required',
      'stores.blob.connection_string: required',
      'stores.bad.type:',
      '(root): unknown key "surprise"',
    ]) {
      assert.ok(res.stderr.includes(expected), `missing "${expected}" in:\n${res.stderr}`)
    }
    assert.ok(!res.stderr.includes(secret), 'a secret leaked into the error output')
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace')
    const missing = await runCli(['--config', path.join(dir, 'nope.yaml')])
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /cannot read file \(ENOENT\)/)
    const envless = await runCli(['--config', 'env'], { env: cleanEnv() })
    assert.equal(envless.code, 1)
    assert.match(envless.stderr, /CACHEGATE_CONFIG or CACHEGATE__/)
  })

  it('a YAML warning (unknown tag) fails start-up with its code and position, never the line', async () => {
    const dir = await tempDir()
    const secret = 'WARNED-SECRET-VALUE-1234567890'
    const yaml = `listen: 127.0.0.1:0\nauth:\n  bearer_token: !!weird ${secret}\nstores:\n  files: { type: fs, root: ${JSON.stringify(dir)} }\n`
    const file = path.join(dir, 'tagged.yaml')
    await writeFile(file, yaml)
    const runs = [
      await runCli(['--config', file], { timeoutMs: 10_000 }),
      await runCli(['--config', 'env'], { env: cleanEnv({ CACHEGATE_CONFIG: yaml }), timeoutMs: 10_000 }),
    ]
    for (const res of runs) {
      assert.equal(res.code, 1, `started anyway:\n${res.stdout}${res.stderr}`)
      assert.match(res.stderr, /TAG_RESOLVE_FAILED\) at line 3, column 17/)
      assert.ok(!`${res.stdout}${res.stderr}`.includes(secret), `a secret leaked:\n${res.stdout}${res.stderr}`)
      assert.ok(!res.stderr.includes('!!weird'), 'the offending line was printed')
      assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace')
    }
    // In-process: the error says where, and the yaml library printed nothing (no process warning).
    const { ConfigError, loadConfig } = await import('../src/config/load.ts')
    const warnings: Error[] = []
    const onWarning = (warning: Error) => warnings.push(warning)
    process.on('warning', onWarning)
    try {
      assert.throws(
        () => loadConfig('env', { CACHEGATE_CONFIG: yaml }),
        (error: unknown) => error instanceof ConfigError && !error.message.includes(secret) && /line 3, column 17/.test(error.message),
      )
      await new Promise((resolve) => setImmediate(resolve))
    } finally {
      process.off('warning', onWarning)
    }
    assert.deepEqual(warnings.map((w) => w.name), [])
    // `sign --keys` reads a key file on its own: a warning there must not print the private key.
    const keys = await keygen(dir, 'tagged.keys.yaml')
    await writeFile(keys.file, `auth:\n  private_key: !!weird ${keys.private_key}\n`)
    const signed = await runCli(['sign', '--bucket', 'files', '--path', 'a.txt', '--keys', keys.file])
    assert.ok(!`${signed.stdout}${signed.stderr}`.includes(keys.private_key), `the private key leaked:\n${signed.stderr}`)
  })

  it('a small-order key in previous_public_keys is a config error naming its entry, not a crash', async () => {
    // The identity point (y = 1): 32 bytes, on the curve, of order 1. Any signature "verifies" under it.
    const identity = 'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
    assert.equal(decodeBase64Url(identity)?.length, 32)
    assert.ok(ed.Point.fromBytes(decodeBase64Url(identity)!).isSmallOrder())
    const dir = await tempDir()
    const { public_key } = await keygen(dir)
    const file = path.join(dir, 'rotated.yaml')
    await writeFile(file, toYaml({ listen: '127.0.0.1:0', auth: { public_key, previous_public_keys: [identity] }, stores: { files: { type: 'fs', root: dir } } }))
    const res = await runCli(['--config', file], { timeoutMs: 10_000 })
    assert.equal(res.code, 1, res.stdout + res.stderr)
    assert.match(res.stderr, /auth\.previous_public_keys\.0: .*small-order/)
    assert.doesNotMatch(res.stderr, /\n\s+at |TypeError/, 'no stack trace')
  })

  it('Cachegate’s own config.example.yaml loads unchanged', async () => {
    const { loadConfig } = await import('../src/config/load.ts')
    const config = loadConfig(path.join(import.meta.dirname, '..', 'config.example.yaml'))
    assert.deepEqual(Object.keys(config.stores).sort(), ['assets-azure', 'media-s3'])
    assert.equal(config.cache.max_memory, 2 ** 30)
  })
})

describe('quickstart', () => {
  it('with no config at all, serves ./data and prints a working presigned URL for a sample object', async () => {
    const dir = await tempDir()
    // --listen only moves the port off 8080 so parallel test runs do not collide.
    const server = await spawnCli(['--listen', '127.0.0.1:0'], /presigned URL \(1 h\):\s+(\S+)/, { cwd: dir })
    try {
      assert.match(server.output(), /DEVELOPMENT MODE/)
      const res = await fetch(server.match[1]!)
      assert.equal(res.status, 200)
      assert.deepEqual(Buffer.from(await res.arrayBuffer()), await readFile(path.join(dir, 'data', 'hello.txt')))
    } finally {
      await server.stop()
    }
  })
})
