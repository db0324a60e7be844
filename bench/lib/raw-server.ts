/**
 * The ceilings for any Node server: plain `node:http`, no framework, no auth, no cache logic.
 *
 *   node bench/lib/raw-server.ts buffer <dir>          every file in <dir> held in a Buffer
 *   node bench/lib/raw-server.ts stream <dir> [hwm]    createReadStream(file).pipe(res) per request
 *
 * `GET /<relative path>` answers with the same headers the gateway sends for an object
 * (type, length, ETag, Last-Modified, Accept-Ranges), so the comparison is header for header.
 * A single `Range: bytes=a-b` is honoured (206), enough for the range workload.
 * Prints `{"msg":"listening","url":...}` like the gateway.
 */
import { createReadStream, readFileSync, readdirSync, statSync } from 'node:fs'
import { type OutgoingHttpHeaders, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'

interface FileEntry {
  file: string
  size: number
  body?: Buffer
  headers: OutgoingHttpHeaders
}

const [mode = 'buffer', dir = '.', hwmArg] = process.argv.slice(2)
if (mode !== 'buffer' && mode !== 'stream') throw new Error('mode must be buffer or stream')
const highWaterMark = hwmArg ? Number(hwmArg) : undefined

const files = new Map<string, FileEntry>()
function scan(rel: string): void {
  for (const entry of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const relPath = path.posix.join(rel, entry.name)
    if (entry.isDirectory()) {
      scan(relPath)
      continue
    }
    const file = path.join(dir, relPath)
    const stat = statSync(file)
    files.set(`/${relPath}`, {
      file,
      size: stat.size,
      body: mode === 'buffer' ? readFileSync(file) : undefined,
      headers: {
        'Content-Type': 'application/octet-stream',
        ETag: `"${stat.size.toString(16)}-${stat.mtimeMs.toString(16)}"`,
        'Last-Modified': stat.mtime.toUTCString(),
        'Accept-Ranges': 'bytes',
      },
    })
  }
}
scan('')

const server = createServer((req, res) => {
  const entry = files.get(req.url ?? '')
  if (!entry) {
    res.writeHead(404, { 'Content-Length': 0 }).end()
    return
  }
  let start = 0
  let end = entry.size - 1
  let status = 200
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')
  if (range) {
    start = Number(range[1])
    end = Math.min(Number(range[2]), entry.size - 1)
    status = 206
  }
  const headers: OutgoingHttpHeaders = { ...entry.headers, 'Content-Length': end - start + 1 }
  if (status === 206) headers['Content-Range'] = `bytes ${start}-${end}/${entry.size}`
  res.writeHead(status, headers)
  if (entry.body) {
    res.end(status === 206 ? entry.body.subarray(start, end + 1) : entry.body)
    return
  }
  const stream = createReadStream(entry.file, { start, end, highWaterMark })
  stream.on('error', () => res.destroy())
  res.on('close', () => stream.destroy())
  stream.pipe(res)
})
server.keepAliveTimeout = 65_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(`${JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${port}`, mode, highWaterMark: highWaterMark ?? null, files: files.size })}\n`)
})
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(0))
