/**
 * Issue 5's measurements (`npm run bench:ranges`): against a 2 GiB object in s3rver, behind
 * a counting proxy,
 *   1. upstream bytes and GETs for a 1 MiB range in the middle of the object (target: 1 page);
 *   2. the gateway's peak RSS while a client streams `Range: bytes=0-` of the whole object,
 *      with a memory tier of 64 MiB, against its idle RSS.
 * The gateway runs as a child process so its RSS is its own (VmRSS / VmHWM from /proc).
 */
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { Readable } from 'node:stream'
import path from 'node:path'
import { S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { stringify } from 'yaml'
import { startCountingProxy } from '../test/helpers/counting-proxy.ts'
import { startS3rver } from '../test/helpers/emulators.ts'
import { tempDir } from '../test/helpers/gateway.ts'

const MiB = 2 ** 20
const GiB = 2 ** 30
const SIZE = 2 * GiB
const PAGE = 16 * MiB
const BEARER = 'bench-ranges-bearer-token-0123456789'

function rss(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

/** Streams a GET to nowhere; resolves with the status and the body bytes counted. */
function drain(url: string, headers: Record<string, string>): Promise<{ status: number; bytes: number; ms: number }> {
  const started = performance.now()
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers }, (res) => {
        let bytes = 0
        res.on('data', (chunk: Buffer) => (bytes += chunk.length))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, ms: performance.now() - started }))
        res.on('error', reject)
      })
      .on('error', reject)
  })
}

async function main(): Promise<void> {
  const s3 = await startS3rver()
  const proxy = await startCountingProxy(s3.endpoint)
  const dir = await tempDir('cachegate-bench-ranges-')
  let gateway: ReturnType<typeof spawn> | undefined
  try {
    process.stdout.write(`uploading a ${SIZE / GiB} GiB object to s3rver...\n`)
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKey, secretAccessKey: s3.secretKey } })
    const block = Buffer.alloc(8 * MiB, 'cachegate-range-bench-')
    async function* body() {
      for (let sent = 0; sent < SIZE; sent += block.length) yield block
    }
    await new Upload({ client, params: { Bucket: s3.bucket, Key: 'big/2g.bin', Body: Readable.from(body()) }, partSize: 64 * MiB, queueSize: 2 }).done()
    client.destroy()

    const config = path.join(dir, 'config.yaml')
    writeFileSync(
      config,
      stringify({
        listen: '127.0.0.1:0',
        auth: { bearer_token: BEARER },
        log: { level: 'warn' },
        cache: { max_memory: '64MiB', max_object_size: '8MiB', page_size: '16MiB' },
        stores: { big: { type: 's3', bucket: s3.bucket, endpoint: proxy.url, allow_http: true, access_key: s3.accessKey, secret_key: s3.secretKey } },
      }),
    )
    const child = spawn(process.execPath, [path.join(import.meta.dirname, '..', 'src/main.ts'), '--config', config], { env: { ...process.env, LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'inherit'] })
    gateway = child
    const base = await new Promise<string>((resolve, reject) => {
      let out = ''
      child.stdout!.on('data', (d: Buffer) => {
        out += d
        const m = /"msg":"listening","url":"([^"]+)"/.exec(out)
        if (m) resolve(m[1]!)
      })
      child.once('exit', (code) => reject(new Error(`gateway exited (${code}): ${out}`)))
    })
    const url = `${base}/big/big/2g.bin`
    const auth = { Authorization: `Bearer ${BEARER}` }

    proxy.reset()
    const middle = SIZE / 2 + 12345
    const one = await drain(url, { ...auth, Range: `bytes=${middle}-${middle + MiB - 1}` })
    const rangeReport = {
      status: one.status,
      bytes: one.bytes,
      upstreamGets: proxy.counts.byMethod.GET ?? 0,
      upstreamHeads: proxy.counts.byMethod.HEAD ?? 0,
      upstreamBytes: proxy.counts.responseBytes,
    }

    await new Promise((r) => setTimeout(r, 500))
    const idle = rss(child.pid!)
    let peak = idle.rss
    const sampler = setInterval(() => (peak = Math.max(peak, rss(child.pid!).rss)), 50)
    proxy.reset()
    const all = await drain(url, { ...auth, Range: 'bytes=0-' })
    clearInterval(sampler)
    const after = rss(child.pid!)

    const lines = [
      `## Ranges of a 2 GiB object (\`npm run bench:ranges\`)`,
      '',
      `Machine: ${process.versions.node}, ${new Date().toISOString()}; s3rver behind a counting proxy; page_size 16 MiB, max_memory 64 MiB.`,
      '',
      '| measurement | value | target |',
      '|---|---|---|',
      `| 1 MiB range at ${(middle / GiB).toFixed(3)} GiB: status, bytes | ${rangeReport.status}, ${rangeReport.bytes} | 206, 1048576 |`,
      `| … upstream GETs / HEADs | ${rangeReport.upstreamGets} / ${rangeReport.upstreamHeads} | 1 page |`,
      `| … upstream bytes | ${rangeReport.upstreamBytes} (${(rangeReport.upstreamBytes / PAGE).toFixed(2)} pages) | ≤ ${PAGE} |`,
      `| bytes=0- of 2 GiB: status, bytes, time | ${all.status}, ${all.bytes}, ${(all.ms / 1000).toFixed(1)} s | 206, ${SIZE} |`,
      `| … upstream GETs, bytes | ${proxy.counts.byMethod.GET ?? 0}, ${proxy.counts.responseBytes} | — |`,
      `| gateway RSS idle → peak (sampled every 50 ms) | ${(idle.rss / MiB).toFixed(0)} MiB → ${(peak / MiB).toFixed(0)} MiB | flat: idle + memory tier + ~3 pages |`,
      `| gateway VmHWM after | ${(after.hwm / MiB).toFixed(0)} MiB | — |`,
      '',
    ]
    process.stdout.write(`${lines.join('\n')}\n`)
  } finally {
    gateway?.kill('SIGTERM')
    await proxy.close()
    await s3.close()
  }
}

await main()
