/**
 * The ceiling for any Node relay: a plain `node:http` proxy that pipes an upstream GET to the
 * client (no SDK, no signing, no framework, no cache). The cold-miss table shows it next to
 * the gateway, so "total ≤ 1.1× direct" can be read against what one extra Node hop costs.
 *
 *   node bench/lib/raw-proxy.ts <upstream base URL>      GET /<path> → GET <upstream>/<path>
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

const target = new URL(process.argv[2] ?? 'http://127.0.0.1:9000')
const agent = new http.Agent({ keepAlive: true })
const server = http.createServer((req, res) => {
  const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, agent }, (up) => {
    res.writeHead(up.statusCode ?? 502, { 'Content-Length': up.headers['content-length'], 'Content-Type': up.headers['content-type'] })
    up.pipe(res)
  })
  upstream.on('error', () => res.destroy())
  upstream.end()
})
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}` })}\n`)
})
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(0))
