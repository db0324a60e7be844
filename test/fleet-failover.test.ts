/**
 * Issue 14: what happens to a fleet behind the shipped deploy/nginx/cachegate.conf when a
 * gateway dies or is stopped. The gateways are real processes (`node src/main.ts`), so a kill
 * is a kill; they share one s3rver bucket through a counting proxy, whose delays hold a
 * request at a known point (the gateway waiting for the store) while the gateway is killed.
 * nginx's access log says which gateways each request tried.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import path from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildRing, ownerOf } from '../bench/lib/nginx-ring.ts'
import { createS3Store } from '../src/stores/s3.ts'
import { type CountingProxy, startCountingProxy } from './helpers/counting-proxy.ts'
import { type S3rverHandle, startS3rver } from './helpers/emulators.ts'
import { BEARER, NODE, ROOT, cleanEnv } from './helpers/gateway.ts'
import { type AccessLine, NGINX, type NginxFront, startNginxFront } from './helpers/nginx-front.ts'
import { freePort } from './helpers/ports.ts'

const SMALL = 120
const auth = { Authorization: `Bearer ${BEARER}` }

/** One gateway process on a fixed port, so it can be killed and started again at the same address. */
class GatewayProcess {
  child?: ChildProcess
  output = ''
  readonly port: number
  readonly config: Record<string, unknown>
  constructor(port: number, config: Record<string, unknown>) {
    this.port = port
    this.config = config
  }

  get host(): string {
    return `127.0.0.1:${this.port}`
  }

  async start(): Promise<void> {
    const env = cleanEnv({ CACHEGATE_CONFIG: JSON.stringify({ ...this.config, listen: this.host }) })
    const child = spawn(NODE, [path.join(ROOT, 'src/main.ts'), '--config', 'env'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    this.output = ''
    // Never leave a gateway behind if the runner dies.
    const killOnExit = () => child.kill('SIGKILL')
    process.once('exit', killOnExit)
    child.once('exit', () => process.removeListener('exit', killOnExit))
    const listening = new Promise<void>((resolve, reject) => {
      const onData = (d: Buffer) => {
        this.output += d
        if (this.output.includes('"msg":"listening"')) resolve()
      }
      child.stdout!.on('data', onData)
      child.stderr!.on('data', onData)
      child.once('exit', (code) => reject(new Error(`gateway exited with ${code}:\n${this.output}`)))
    })
    await listening
  }

  /** Sends `signal` and resolves with the exit code (or signal) once the process is gone. */
  async stop(signal: NodeJS.Signals): Promise<number | string | null> {
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null
    child.removeAllListeners('exit')
    const exited = once(child, 'exit')
    child.kill(signal)
    const [code, sig] = (await exited) as [number | null, string | null]
    return code ?? sig
  }
}

/** Requests for the store paths in `paths` that the proxy has seen so far. */
function seen(proxy: CountingProxy, method: string): number {
  return proxy.counts.byMethod[method] ?? 0
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(20)
  }
}

describe('fleet failures behind nginx: kill, death mid-response, SIGTERM', { skip: NGINX ? false : 'nginx not installed' }, () => {
  let s3: S3rverHandle
  let proxy: CountingProxy
  let front: NginxFront
  let gateways: GatewayProcess[]
  let ring: ReturnType<typeof buildRing>
  const objects = new Map<string, Buffer>()
  let drainKey: string
  const uri = (key: string) => `/media/${key}`
  const ownerIndex = (key: string, unavailable = new Set<string>()) => gateways.findIndex((g) => g.host === ownerOf(ring, uri(key), unavailable))
  /** Access-log lines for `key` written after `from` lines. */
  const linesFor = async (from: number, key?: string): Promise<AccessLine[]> => (await front.accessLog()).slice(from).filter((l) => key === undefined || l.uri === uri(key))

  async function get(key: string): Promise<{ status: number; ok: boolean }> {
    try {
      const res = await fetch(`${front.url}${uri(key)}`, { headers: auth })
      const body = Buffer.from(await res.arrayBuffer())
      return { status: res.status, ok: res.status === 200 && body.equals(objects.get(key)!) }
    } catch {
      return { status: 0, ok: false }
    }
  }

  /** Starts `gateway` again and waits until nginx sends it its keys again (after fail_timeout). */
  async function restart(gateway: GatewayProcess): Promise<void> {
    await gateway.start()
    const probe = small().find((k) => ownerOf(ring, uri(k)) === gateway.host)!
    await until(`nginx to use ${gateway.host} again`, async () => {
      const from = (await front.accessLog()).length
      assert.equal((await get(probe)).ok, true)
      return (await linesFor(from, probe))[0]?.upstreams.at(-1) === gateway.host
    })
  }

  before(async () => {
    s3 = await startS3rver()
    proxy = await startCountingProxy(s3.endpoint)
    const direct = createS3Store({ id: 'seed', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
    const config = {
      auth: { bearer_token: BEARER },
      trust_proxy: ['127.0.0.1'],
      log: { level: 'info' },
      cache: { max_memory: '64MiB', max_object_size: '8MiB' },
      shutdown: { drain_seconds: 1, grace_seconds: 5 },
      stores: { media: { type: 's3', bucket: s3.bucket, endpoint: proxy.url, allow_http: true, access_key: s3.accessKey, secret_key: s3.secretKey } },
    }
    const ports = [await freePort(), await freePort(), await freePort()]
    gateways = ports.map((port) => new GatewayProcess(port, config))
    ring = buildRing(gateways.map((g) => g.host))
    for (let i = 0; i < SMALL; i++) objects.set(`small/obj-${i}.bin`, randomBytes(1024))
    objects.set('large/a.bin', randomBytes(4 * 1024 * 1024))
    // A cold object of gateways[1], read slowly while it is stopped with SIGTERM.
    drainKey = Array.from({ length: 100 }, (_, i) => `large/drain-${i}.bin`).find((k) => ownerIndex(k) === 1)!
    objects.set(drainKey, randomBytes(2 * 1024 * 1024))
    await Promise.all([...objects].map(([key, body]) => direct.put(key, Readable.from([body]), { contentType: 'application/octet-stream', size: body.length })))
    await Promise.all(gateways.map((g) => g.start()))
    front = await startNginxFront(gateways.map((g) => g.host))
  })
  after(async () => {
    await front?.stop()
    await Promise.all((gateways ?? []).map((g) => g.stop('SIGKILL')))
    await proxy?.close()
    await s3?.close()
  })

  const small = () => [...objects.keys()].filter((k) => k.startsWith('small/'))

  it('kill -9 one gateway: its keys (about a third) move to the next gateway on the ring with no failed request; restarted, they come back', async (t) => {
    for (const key of small()) assert.equal((await get(key)).ok, true, key)
    const victim = gateways[1]!
    await victim.stop('SIGKILL')
    proxy.reset()
    const mark = (await front.accessLog()).length
    const results = await Promise.all(small().map((key) => get(key)))
    assert.deepEqual(results.filter((r) => !r.ok), [], 'every read succeeded (retried on the next gateway)')

    let moved = 0
    for (const key of small()) {
      const [line] = await linesFor(mark, key)
      const owner = ownerOf(ring, uri(key))!
      const served = line!.upstreams.at(-1)
      if (owner === victim.host) {
        moved++
        assert.equal(served, ownerOf(ring, uri(key), new Set([victim.host])), `${key}: the ring successor`)
      } else {
        assert.deepEqual(line!.upstreams, [owner], `${key} stays where it was`)
      }
    }
    t.diagnostic(`${moved} of ${SMALL} keys moved (${((100 * moved) / SMALL).toFixed(0)}%)`)
    assert.ok(moved > SMALL * 0.15 && moved < SMALL * 0.55, `${moved} of ${SMALL} moved`)
    assert.equal(seen(proxy, 'GET'), moved, 'only the moved keys were fetched again (each once, by its new gateway)')

    // Back at the same address: once nginx probes it (fail_timeout=5s), its keys return to it.
    await restart(victim)
    const mark2 = (await front.accessLog()).length
    const again = await Promise.all(small().map((key) => get(key)))
    assert.deepEqual(again.filter((r) => !r.ok), [])
    for (const key of small()) assert.equal((await linesFor(mark2, key))[0]!.upstreams.at(-1), ownerOf(ring, uri(key)), key)
  })

  it('a gateway killed before its first response byte: nginx retries the GET on the next gateway, and the client gets the whole object', async () => {
    const key = small().find((k) => ownerIndex(k) === 2)!
    const owner = gateways[2]!
    proxy.reset()
    // The owner's store GET for this key (a miss: nothing has been read since the warm pass
    // moved on) is held at the proxy; the retry's GET goes through.
    const path = `/${s3.bucket}/${key}`
    let held = 0
    proxy.configure({ delayFor: ({ method, path: p }) => (method === 'GET' && p.startsWith(path) && held++ === 0 ? 5_000 : undefined) })
    // Push the key out of the owner's cache: restart it (memory-only cache).
    await owner.stop('SIGKILL')
    await restart(owner)
    const mark = (await front.accessLog()).length
    const reading = get(key)
    await until('the owner to ask the store', () => held > 0)
    await owner.stop('SIGKILL')
    const result = await reading
    proxy.configure({})
    assert.equal(result.ok, true, `status ${result.status}`)
    const [line] = await linesFor(mark, key)
    assert.equal(line!.upstreams.length, 2, `tried: ${line!.upstreams.join(', ')}`)
    assert.equal(line!.upstreams[0], owner.host)
    await restart(owner)
  })

  it('a gateway killed mid-body: nginx cannot retry once bytes went out; the client sees the response cut', async () => {
    const key = 'large/a.bin'
    const owner = gateways[ownerIndex(key)]!
    proxy.configure({ bytesPerSecond: 512 * 1024 })
    const mark = (await front.accessLog()).length
    const res = await fetch(`${front.url}${uri(key)}`, { headers: auth })
    assert.equal(res.status, 200)
    const reader = res.body!.getReader()
    let received = (await reader.read()).value?.length ?? 0
    await owner.stop('SIGKILL')
    const cut = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) return false
          received += value.length
        }
      } catch {
        return true
      }
    })()
    proxy.configure({})
    assert.ok(cut, `the body ended in an error (received ${received}, headers ${JSON.stringify([...res.headers])})`)
    assert.ok(received < objects.get(key)!.length, `received ${received} bytes`)
    await until('the access log line', async () => (await linesFor(mark, key)).length > 0)
    assert.deepEqual((await linesFor(mark, key))[0]!.upstreams, [owner.host], 'not retried')
    await restart(owner)
  })

  it('a PUT whose gateway dies after taking it is never replayed on another gateway: the client gets 502, the store saw one PUT', async () => {
    const key = small().find((k) => ownerIndex(k) === 0)!
    const owner = gateways[0]!
    proxy.reset()
    proxy.configure({ delayFor: ({ method }) => (method === 'PUT' ? 5_000 : undefined) })
    const mark = (await front.accessLog()).length
    // Small: nginx has the whole body before it connects, the case it would replay.
    const putting = fetch(`${front.url}${uri(key)}`, { method: 'PUT', headers: auth, body: randomBytes(512) })
    await until('the PUT to reach the store', () => seen(proxy, 'PUT') > 0)
    await owner.stop('SIGKILL')
    const res = await putting
    proxy.configure({})
    assert.equal(res.status, 502)
    // nginx answered 502 only after deciding not to retry: no later PUT can follow.
    assert.equal(seen(proxy, 'PUT'), 1)
    assert.deepEqual((await linesFor(mark, key))[0]!.upstreams, [owner.host])
    await restart(owner)
  })

  it('SIGTERM one gateway under GET/HEAD load: it drains (shutdown.drain_seconds) and exits, and no request fails', async () => {
    const victim = gateways[1]!
    const failures: string[] = []
    let stopped = false
    let served = 0
    const worker = async (w: number) => {
      for (let i = w; !stopped; i += 8) {
        const key = small()[i % SMALL]!
        if (i % 3 === 0) {
          const res = await fetch(`${front.url}${uri(key)}`, { method: 'HEAD', headers: auth }).catch((e: Error) => e)
          if (res instanceof Error || res.status !== 200) failures.push(`HEAD ${key}: ${res instanceof Error ? res.message : res.status}`)
        } else {
          const r = await get(key)
          if (!r.ok) failures.push(`GET ${key}: ${r.status}`)
        }
        served++
      }
    }
    const load = Promise.all(Array.from({ length: 8 }, (_, w) => worker(w)))
    await until('some load', () => served > 200)
    // In flight at the victim when SIGTERM arrives, and for longer than the drain (1 s):
    // 2 MiB from a store that sends 1 MiB/s.
    proxy.reset()
    proxy.configure({ bytesPerSecond: 1024 * 1024 })
    const mark = (await front.accessLog()).length
    const slow = get(drainKey)
    await until('the slow read to start', () => proxy.counts.responseBytes > 0)
    const exit = await victim.stop('SIGTERM')
    proxy.configure({})
    assert.equal((await slow).ok, true, 'the slow read in flight at SIGTERM finished whole')
    assert.deepEqual((await linesFor(mark, drainKey))[0]?.upstreams, [victim.host], 'and was served by the victim')
    const afterExit = served
    await until('load after the exit', () => served > afterExit + 200)
    stopped = true
    await load
    assert.equal(exit, 0, victim.output.slice(-2000))
    assert.match(victim.output, /draining/)
    assert.deepEqual(failures, [])
    await restart(victim)
  })
})
