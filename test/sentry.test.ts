/**
 * Sentry, proven against a loopback server standing in for Sentry's ingest endpoint: an
 * unexpected error (a store throwing a TypeError) arrives as an event naming the method and
 * route; no token, signature, cookie, `X-Amz-*` value or query string appears in anything
 * sent; domain errors (404, 401, 502) send no event. The gateway runs in a child process:
 * `@sentry/node` is process-global.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { gunzipSync } from 'node:zlib'
import { generateKeyPair } from '../src/auth/keys.ts'
import { presign } from '../src/auth/presign.ts'
import { BEARER, NODE, ROOT, cleanEnv, rawRequest, tempDir } from './helpers/gateway.ts'

interface Envelope {
  path: string
  text: string
  items: { type?: string; payload: Record<string, unknown> }[]
}

/** Sentry envelopes: a header line, then (item header, payload) pairs of JSON lines. */
function parseEnvelope(text: string): Envelope['items'] {
  const lines = text.split('\n').filter(Boolean)
  const items: Envelope['items'] = []
  for (let i = 1; i + 1 < lines.length; i += 2) items.push({ type: (JSON.parse(lines[i]!) as { type?: string }).type, payload: JSON.parse(lines[i + 1]!) as Record<string, unknown> })
  return items
}

it('an unexpected error reaches Sentry with method and route and no secret; domain errors send nothing', async () => {
  const envelopes: Envelope[] = []
  const ingest = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      let body = Buffer.concat(chunks)
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      const text = body.toString('utf8')
      envelopes.push({ path: req.url ?? '', text, items: parseEnvelope(text) })
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}')
    })
  })
  ingest.listen(0, '127.0.0.1')
  await once(ingest, 'listening')
  const ingestPort = (ingest.address() as AddressInfo).port

  const root = await tempDir()
  await writeFile(path.join(root, 'ok.txt'), 'fine')
  const keys = generateKeyPair()
  const config = {
    listen: '127.0.0.1:0',
    auth: { public_key: keys.public_key, bearer_token: BEARER },
    stores: { local: { type: 'fs', root } },
    sentry: { dsn: `http://publickey@127.0.0.1:${ingestPort}/1`, environment: 'test', traces_sample_rate: 1 },
    log: { level: 'silent' },
  }
  const child = spawn(NODE, [path.join(ROOT, 'test/helpers/sentry-gateway.ts')], { env: cleanEnv({ CACHEGATE_SENTRY_TEST_CONFIG: JSON.stringify(config) }), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d))
  child.stderr.on('data', (d: Buffer) => (output += d))
  const exited = once(child, 'exit')
  const secrets = {
    cookie: 'session-cookie-value-4242',
    amz: 'amz-security-token-value-4242',
    query: 'private-query-value-4242',
  }
  try {
    while (!/listening (http:\S+)/.test(output)) {
      assert.equal(child.exitCode, null, output)
      await sleep(20)
    }
    const base = /listening (http:\S+)/.exec(output)![1]!
    const signed = new URL(presign({ baseUrl: base, bucket: 'local', path: 'boom.txt', privateKey: keys.private_key! }))
    const sig = signed.searchParams.get('sig')!
    const headers = { Authorization: `Bearer ${BEARER}`, Cookie: `session=${secrets.cookie}`, 'X-Amz-Security-Token': secrets.amz }

    // Two bugs: a presigned GET and a bearer HEAD with a query, cookies and AWS headers.
    assert.equal((await rawRequest(base, 'GET', `${signed.pathname}${signed.search}&x=${secrets.query}`)).status, 500)
    assert.equal((await rawRequest(base, 'HEAD', `/local/boom.txt?prefetch=0&y=${secrets.query}`, headers)).status, 500)
    // Domain errors: not found, unauthorized, store failure.
    assert.equal((await rawRequest(base, 'GET', `/local/missing.txt?z=${secrets.query}`, headers)).status, 404)
    assert.equal((await rawRequest(base, 'GET', '/local/ok.txt', { Authorization: 'Bearer not-the-token-0123456789' })).status, 401)
    assert.equal((await rawRequest(base, 'GET', `/local/upstream.txt?w=${secrets.query}`, headers)).status, 502)
    assert.equal((await rawRequest(base, 'GET', '/local/ok.txt', headers)).status, 200)

    child.kill('SIGTERM') // close() flushes Sentry
    await exited
    const events = envelopes.flatMap((e) => e.items.filter((i) => i.type === 'event').map((i) => i.payload))
    assert.equal(events.length, 2, `two events (the 500s), got: ${JSON.stringify(events.map((e) => e.exception))}`)
    const methods = events.map((e) => (e.tags as Record<string, string>).method).sort()
    assert.deepEqual(methods, ['GET', 'HEAD'])
    for (const event of events) {
      const tags = event.tags as Record<string, string>
      assert.equal(tags.route, '/:bucket_id/*path')
      const exception = (event.exception as { values: { type: string; value: string }[] }).values.at(-1)!
      assert.deepEqual([exception.type, exception.value], ['TypeError', 'store exploded'])
      assert.equal(event.environment, 'test')
    }
    for (const envelope of envelopes) assert.match(envelope.path, /^\/api\/1\/envelope\//)
    const everything = envelopes.map((e) => e.text).join('\n')
    for (const secret of [BEARER, sig, sig.slice(0, 24), secrets.cookie, secrets.amz, secrets.query, 'not-the-token', 'prefetch=', keys.private_key!]) {
      assert.ok(!everything.includes(secret), `"${secret}" was sent to Sentry`)
    }
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL')
    ingest.close()
  }
})
