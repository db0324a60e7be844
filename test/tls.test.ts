/**
 * `tls`: HTTPS with a certificate from a test CA; SIGHUP serves a renewed certificate to new
 * connections without dropping an open one; a broken pair on SIGHUP keeps the old one;
 * an unreadable or mismatched pair stops start-up naming the file; `tls.self_signed`.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import https from 'node:https'
import type { TLSSocket } from 'node:tls'
import path from 'node:path'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify as toYaml } from 'yaml'
import { generate } from 'selfsigned'
import { generateKeyPair } from '../src/auth/keys.ts'
import { validateConfig } from '../src/config/load.ts'
import { createLogger } from '../src/log.ts'
import { startServer } from '../src/server.ts'
import { BEARER, NODE, ROOT, cleanEnv, runCli, spawnCli, tempDir } from './helpers/gateway.ts'

const LISTENING = /"msg":"listening","url":"(https:\/\/[^"]+)"/

async function testCa() {
  const ca = await generate([{ name: 'commonName', value: 'cachegate test CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  })
  const leaf = async (cn: string) => {
    const pems = await generate([{ name: 'commonName', value: cn }], {
      keyType: 'ec',
      algorithm: 'sha256',
      ca: { key: ca.private, cert: ca.cert },
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'extKeyUsage', serverAuth: true },
        { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
      ],
    })
    return { cert: pems.cert, key: pems.private, fingerprint: new X509Certificate(pems.cert).fingerprint256 }
  }
  return { cert: ca.cert, leaf }
}

interface Got {
  status: number
  body: string
  fingerprint: string
  reused: boolean
}

function get(base: string, target: string, agent: https.Agent): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(target, base), { agent, headers: { Authorization: `Bearer ${BEARER}` } }, (res) => {
      let body = ''
      const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, fingerprint, reused: req.reusedSocket }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** Writes a file the way a renewal tool would: a temp file renamed into place. */
async function replace(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text)
  await rename(`${file}.tmp`, file)
}

async function writeConfig(dir: string, data: string, tls: Record<string, unknown>): Promise<string> {
  const file = path.join(dir, 'config.yaml')
  await writeFile(file, toYaml({ listen: '127.0.0.1:0', auth: { public_key: generateKeyPair().public_key, bearer_token: BEARER }, stores: { local: { type: 'fs', root: data } }, tls, log: { level: 'info', access: false }, shutdown: { drain_seconds: 0 } }))
  return file
}

describe('tls', () => {
  it('serves HTTPS; SIGHUP serves a new certificate to new connections, keeps open ones, and survives a broken pair', async () => {
    const ca = await testCa()
    const [first, second, third] = await Promise.all([ca.leaf('first'), ca.leaf('second'), ca.leaf('third')])
    const dir = await tempDir()
    const data = path.join(dir, 'data')
    await mkdir(data)
    await writeFile(path.join(data, 'x.txt'), 'over tls')
    const certFile = path.join(dir, 'tls.crt')
    const keyFile = path.join(dir, 'tls.key')
    await writeFile(certFile, first.cert)
    await writeFile(keyFile, first.key)
    const config = await writeConfig(dir, data, { cert: certFile, key: keyFile })
    const child = spawn(NODE, [path.join(ROOT, 'src/main.ts'), '--config', config], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d))
    child.stderr.on('data', (d: Buffer) => (output += d))
    const waitFor = async (pattern: RegExp, count = 1) => {
      while ((output.match(new RegExp(pattern, 'g')) ?? []).length < count) {
        assert.equal(child.exitCode, null, output)
        await sleep(20)
      }
    }
    const kept = new https.Agent({ ca: ca.cert, keepAlive: true, maxSockets: 1 })
    try {
      await waitFor(LISTENING)
      const base = LISTENING.exec(output)![1]!
      const fresh = () => new https.Agent({ ca: ca.cert, keepAlive: false })

      const one = await get(base, '/local/x.txt', kept)
      assert.deepEqual([one.status, one.body, one.fingerprint], [200, 'over tls', first.fingerprint])
      // A client that does not trust the CA is refused by its own TLS check.
      await assert.rejects(get(base, '/local/x.txt', new https.Agent({ keepAlive: false })), /self.signed|unable to (get|verify)/i)

      await replace(certFile, second.cert)
      await replace(keyFile, second.key)
      child.kill('SIGHUP')
      await waitFor(/"msg":"tls certificate reloaded; new connections use it"/)
      assert.match(output, new RegExp(`"fingerprint256":"${second.fingerprint}"`))
      const renewed = await get(base, '/local/x.txt', fresh())
      assert.deepEqual([renewed.status, renewed.body, renewed.fingerprint], [200, 'over tls', second.fingerprint])
      // The connection opened before the reload is still there and still works.
      const again = await get(base, '/local/x.txt', kept)
      assert.deepEqual([again.status, again.reused, again.fingerprint], [200, true, first.fingerprint])

      // A key that belongs to another certificate: logged, the served one stays.
      await replace(keyFile, third.key)
      child.kill('SIGHUP')
      await waitFor(/"msg":"tls reload failed; still serving the previous certificate"/)
      assert.match(output, /does not belong to tls\.cert/)
      const afterBroken = await get(base, '/local/x.txt', fresh())
      assert.deepEqual([afterBroken.status, afterBroken.fingerprint], [200, second.fingerprint])
      assert.equal(child.exitCode, null, 'a bad reload does not stop the gateway')
      assert.ok(!output.includes('PRIVATE KEY'), 'no key material in the log')
    } finally {
      kept.destroy()
      child.kill('SIGINT')
    }
  })

  it('an unreadable, invalid or mismatched pair stops start-up naming the file', async () => {
    const ca = await testCa()
    const [a, b] = await Promise.all([ca.leaf('a'), ca.leaf('b')])
    const dir = await tempDir()
    const cert = path.join(dir, 'a.crt')
    const key = path.join(dir, 'a.key')
    const otherKey = path.join(dir, 'b.key')
    const garbage = path.join(dir, 'garbage.crt')
    await Promise.all([writeFile(cert, a.cert), writeFile(key, a.key), writeFile(otherKey, b.key), writeFile(garbage, 'not a certificate\n')])
    const cases: [Record<string, string>, RegExp][] = [
      [{ cert: path.join(dir, 'missing.crt'), key }, /cannot read tls\.cert .*missing\.crt: ENOENT/],
      [{ cert, key: path.join(dir, 'missing.key') }, /cannot read tls\.key .*missing\.key: ENOENT/],
      [{ cert: garbage, key }, /tls\.cert .*garbage\.crt is not a PEM certificate/],
      [{ cert, key: otherKey }, /tls\.key .*b\.key does not belong to tls\.cert .*a\.crt/],
      [{ cert }, /set both tls\.cert and tls\.key/],
    ]
    for (const [tls, message] of cases) {
      const res = await runCli(['--config', await writeConfig(dir, dir, tls)], { timeoutMs: 20_000 })
      assert.equal(res.code, 1, res.stdout + res.stderr)
      assert.match(res.stderr, message)
      assert.ok(!res.stderr.includes('PRIVATE KEY') && !res.stderr.includes(' at '), 'no key material, no stack trace')
    }
  })

  it('development mode with --https serves the sample over HTTPS (self-signed); --https with --config is refused', async () => {
    const cwd = await tempDir()
    const server = await spawnCli(['--https', '--listen', '127.0.0.1:0'], /presigned URL \(1 h\):\s+(\S+)/, { cwd })
    try {
      const url = server.match[1]!
      assert.match(url, /^https:\/\/127\.0\.0\.1:\d+\/local\/hello\.txt\?sig=/)
      assert.match(server.output(), /curl -k -H/)
      const status = await new Promise<number>((resolve, reject) => {
        https.get(url, { rejectUnauthorized: false }, (res) => resolve(res.resume().statusCode ?? 0)).on('error', reject)
      })
      assert.equal(status, 200)
    } finally {
      await server.stop()
    }
    const refused = await runCli(['--https', '--config', 'whatever.yaml'])
    assert.equal(refused.code, 2)
    assert.match(refused.stderr, /--https is for development mode/)
  })

  it('tls.self_signed serves HTTPS with a generated certificate for localhost', async () => {
    const dir = await tempDir()
    await writeFile(path.join(dir, 'x.txt'), 'self-signed')
    const config = validateConfig({ listen: '127.0.0.1:0', auth: { bearer_token: BEARER }, stores: { local: { type: 'fs', root: dir } }, tls: { self_signed: true }, log: { level: 'silent' } })
    const running = await startServer(config, { logger: createLogger('silent') })
    try {
      assert.match(running.url, /^https:\/\/127\.0\.0\.1:\d+$/)
      const got = await new Promise<{ status: number; cn: string | undefined }>((resolve, reject) => {
        https
          .get(`${running.url}/local/x.txt`, { rejectUnauthorized: false, headers: { Authorization: `Bearer ${BEARER}` } }, (res) => {
            res.resume()
            resolve({ status: res.statusCode ?? 0, cn: (res.socket as TLSSocket).getPeerCertificate().subject?.CN as string | undefined })
          })
          .on('error', reject)
      })
      assert.deepEqual(got, { status: 200, cn: 'localhost' })
    } finally {
      await running.close()
    }
  })
})
