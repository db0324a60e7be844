/**
 * One wrk run, pinned to the client core, summarised by a Lua `done()` hook as JSON.
 *
 * A workload whose requests vary (several paths, Range headers, presigned URLs) uses a Lua
 * `request()` function for EVERY target it measures, so the generator's own cost is the same
 * on both sides of a ratio; fixed requests use wrk's static request.
 */
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { runToEnd } from './procs.ts'

export interface WrkRequest {
  /** Paths (with query) to cycle through, each sent as-is. */
  paths: string[]
  headers?: Record<string, string>
  /** `Range` values to cycle through (independently of the paths). */
  ranges?: string[]
}

export interface WrkOptions {
  url: string
  request: WrkRequest
  /** Use a Lua `request()` even for a single fixed request (see above). */
  dynamic: boolean
  connections: number
  durationSeconds: number
  scriptDir: string
}

export interface WrkResult {
  requests: number
  bytes: number
  seconds: number
  rps: number
  /** Response bytes per second (headers included, as wrk counts them). */
  bytesPerSecond: number
  p50Ms: number
  p99Ms: number
  /** Socket errors and non-2xx/3xx responses. */
  errors: number
}

const lua = (value: string) => JSON.stringify(value)

function script(request: WrkRequest, dynamic: boolean): string {
  const headers = Object.entries(request.headers ?? {})
    .map(([name, value]) => `wrk.headers[${lua(name)}] = ${lua(value)}`)
    .join('\n')
  const done = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end`
  if (!dynamic) return `${headers}\n${done}\n`
  const ranges = request.ranges ?? []
  return `${headers}
local paths = { ${request.paths.map(lua).join(', ')} }
local ranges = { ${ranges.map(lua).join(', ')} }
local i = 0
request = function()
  i = i + 1
  if #ranges > 0 then wrk.headers["Range"] = ranges[(i % #ranges) + 1] end
  return wrk.format("GET", paths[(i % #paths) + 1])
end
${done}
`
}

let scriptCounter = 0

export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const { request, dynamic } = options
  if (!dynamic && (request.paths.length !== 1 || (request.ranges?.length ?? 0) > 0)) throw new Error('a varying request needs dynamic: true')
  const file = path.join(options.scriptDir, `wrk-${process.pid}-${scriptCounter++}.lua`)
  await writeFile(file, script(request, dynamic))
  const url = new URL(request.paths[0]!, options.url).href
  const stdout = await runToEnd('wrk', 'wrk', ['-t1', `-c${options.connections}`, `-d${options.durationSeconds}s`, '--timeout', '30s', '-s', file, url])
  const match = /WRKJSON (\{.*\})/.exec(stdout)
  if (!match) throw new Error(`wrk printed no summary:\n${stdout}`)
  const raw = JSON.parse(match[1]!) as { requests: number; bytes: number; duration_us: number; errors: number; p50_us: number; p99_us: number }
  const seconds = raw.duration_us / 1e6
  return {
    requests: raw.requests,
    bytes: raw.bytes,
    seconds,
    rps: raw.requests / seconds,
    bytesPerSecond: raw.bytes / seconds,
    p50Ms: raw.p50_us / 1000,
    p99Ms: raw.p99_us / 1000,
    errors: raw.errors,
  }
}
