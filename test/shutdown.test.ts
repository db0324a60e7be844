/**
 * SIGTERM under load, on the real CLI process: `/health/ready` turns 503 first while every
 * request is still answered, the gateway waits `shutdown.drain_seconds`, then stops
 * accepting, lets an upload in flight finish, and exits 0 within the grace time.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { stringify as toYaml } from 'yaml'
import { generateKeyPair } from '../src/auth/keys.ts'
import { BEARER, NODE, ROOT, cleanEnv, tempDir } from './helpers/gateway.ts'

const LISTENING = /"msg":"listening","url":"(http:\/\/[^"]+)"/
const DRAIN_S = 1.5
const GRACE_S = 8

interface Answer {
  status: number
  connection: string | undefined
  body: Buffer
}

function request(agent: http.Agent, base: string, method: string, target: string, body?: (req: http.ClientRequest) => void): Promise<Answer> {
  const url = new URL(target, base)
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { Authorization: `Bearer ${BEARER}` } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body) body(req)
    else req.end()
  })
}

it('SIGTERM during load: not ready first, no request fails, in-flight upload finishes, every access line written, exit 0 within the grace time', async () => {
  const dir = await tempDir()
  const data = path.join(dir, 'data')
  await (await import('node:fs/promises')).mkdir(data)
  const object = Buffer.alloc(4096, 'a')
  await writeFile(path.join(data, 'small.bin'), object)
  const config = path.join(dir, 'config.yaml')
  await writeFile(
    config,
    toYaml({
      listen: '127.0.0.1:0',
      auth: { public_key: generateKeyPair().public_key, bearer_token: BEARER },
      stores: { local: { type: 'fs', root: data } },
      shutdown: { drain_seconds: DRAIN_S, grace_seconds: GRACE_S },
      log: { level: 'info' },
    }),
  )
  const child = spawn(NODE, [path.join(ROOT, 'src/main.ts'), '--config', config], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d))
  child.stderr.on('data', (d: Buffer) => (output += d))
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>
  try {
    while (!LISTENING.test(output)) {
      assert.equal(child.exitCode, null, output)
      await sleep(20)
    }
    const base = LISTENING.exec(output)![1]!
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
    const probe = new http.Agent({ keepAlive: false })

    // Load: 8 keep-alive clients, each stopping once the balancer (the probe loop) saw 503.
    let notReadyAt: number | undefined
    const answers: Answer[] = []
    const failures: unknown[] = []
    const worker = async () => {
      while (notReadyAt === undefined) {
        try {
          answers.push(await request(agent, base, 'GET', '/local/small.bin'))
        } catch (error) {
          failures.push(error)
        }
      }
    }
    const workers = Array.from({ length: 8 }, worker)
    const probing = (async () => {
      while (notReadyAt === undefined) {
        const ready = await request(probe, base, 'GET', '/health/ready')
        if (ready.status === 503) notReadyAt = performance.now()
        else assert.equal(ready.status, 200)
        await sleep(25)
      }
    })()

    // An upload that trickles in across the drain and the close: it must complete.
    const part = Buffer.alloc(8192, 'u')
    const upload = request(agent, base, 'PUT', '/local/slow.bin', (req) => {
      req.setHeader('Content-Length', part.length * 12)
      let sent = 0
      const tick = setInterval(() => {
        req.write(part)
        if (++sent === 12) {
          clearInterval(tick)
          req.end()
        }
      }, 250)
    })

    await sleep(300)
    const answeredBefore = answers.length
    assert.ok(answeredBefore > 0, 'the load is running')
    const signalledAt = performance.now()
    child.kill('SIGTERM')
    await Promise.all([probing, ...workers])
    assert.ok(notReadyAt! - signalledAt < DRAIN_S * 1000, 'not ready soon after SIGTERM, within the drain time')

    // Not ready, yet still serving, and telling clients to reconnect elsewhere.
    const during = await request(probe, base, 'GET', '/local/small.bin')
    assert.equal(during.status, 200)
    assert.equal(during.connection, 'close')

    const uploaded = await upload
    assert.ok(uploaded.status === 200 || uploaded.status === 201, `upload answered ${uploaded.status}: ${uploaded.body}`)
    const [code, signal] = await exited
    const exitMs = performance.now() - signalledAt
    assert.deepEqual(failures, [], 'no request failed')
    assert.ok(answers.length > answeredBefore, 'requests were served after SIGTERM')
    for (const a of answers) {
      assert.equal(a.status, 200)
      assert.ok(a.body.equals(object))
    }
    assert.equal(signal, null)
    assert.equal(code, 0, output)
    assert.ok(exitMs >= DRAIN_S * 1000, `waited the drain time (${Math.round(exitMs)} ms)`)
    assert.ok(exitMs < (DRAIN_S + GRACE_S) * 1000, `exited within drain + grace (${Math.round(exitMs)} ms)`)
    assert.match(output, /"msg":"draining: not ready, still serving"/)
    assert.match(output, /"msg":"stopped"/)
    assert.doesNotMatch(output, /grace time over/)
    // Every access line was written before the process exited (flushed on shutdown).
    const served = output.split('\n').filter((line) => line.includes('"msg":"access"') && line.includes('"path":"/local/small.bin"'))
    assert.equal(served.length, answers.length + 1)
    assert.equal(output.split('\n').filter((line) => line.includes('"msg":"access"') && line.includes('"method":"PUT"')).length, 1)
    agent.destroy()
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
})
