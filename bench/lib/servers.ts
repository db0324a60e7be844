/**
 * The servers under test, each a pinned child process: s3rver, the gateway, the raw
 * node:http ceilings and nginx proxy_cache.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { CLIENT_CORE, type Child, startChild, waitForOutput } from './procs.ts'
import { freePort } from '../../test/helpers/ports.ts'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const NODE = process.execPath

export interface Server {
  name: string
  url: string
  child: Child
}

export interface S3rverServer extends Server {
  bucket: string
}

/**
 * s3rver stands for remote object storage, so it runs on the CLIENT core: sharing the
 * gateway's core would charge the gateway's time to first byte with s3rver's own work,
 * which a direct GET (s3rver alone on its core) never pays. This way both the direct GET
 * and the gateway path run s3rver and the client on one core, and the gateway has the other.
 */
export async function startS3rverProcess(): Promise<S3rverServer> {
  const child = startChild('s3rver', NODE, [path.join(ROOT, 'bench/lib/s3rver-main.ts')], { core: CLIENT_CORE })
  const match = await waitForOutput(child, /"endpoint":"([^"]+)","bucket":"([^"]+)"/)
  return { name: 's3rver', url: match[1]!, bucket: match[2]!, child }
}

export interface GatewayServer extends Server {
  configFile: string
  /** The gateway's `/stats` document. */
  stats(): Promise<GatewayStats>
  /** Sum of `cachegate_upstream_duration_seconds` for `op` (time to upstream response headers), in ms. */
  upstreamMs(op: string): Promise<number>
}

export interface GatewayStats {
  cache: { hits: number; misses: number; inflight_fills: number; tiers: Record<string, { entries: number; bytes: number; max_bytes: number } | undefined> }
  upstream: { ok: number; errors: number }
}

/**
 * Starts `node src/main.ts --config <file>` with `config` written as YAML (JSON is YAML).
 * `nodeArgs` go before the script, e.g. `--cpu-prof`; `root` is the checkout to run
 * (another copy of the repository, to compare a patch in the same run).
 */
export async function startGateway(name: string, dir: string, config: Record<string, unknown>, nodeArgs: string[] = [], root = ROOT): Promise<GatewayServer> {
  await mkdir(dir, { recursive: true })
  const configFile = path.join(dir, `${name}.yaml`)
  await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`)
  // The same V8 flags as `npm start`, the bin and the image (see bin/cachegate.js).
  const child = startChild(name, NODE, ['--no-memory-reducer', '--no-flush-bytecode', ...nodeArgs, path.join(root, 'src/main.ts'), '--config', configFile], { cwd: dir, stdoutFile: path.join(dir, 'stdout.log') })
  const match = await waitForOutput(child, /"msg":"listening","url":"([^"]+)"/)
  const url = match[1]!
  return {
    name,
    url,
    child,
    configFile,
    async stats() {
      const response = await fetch(`${url}/stats`)
      return (await response.json()) as GatewayStats
    },
    async upstreamMs(op: string) {
      const text = await (await fetch(`${url}/metrics`)).text()
      let sum = 0
      for (const match of text.matchAll(/^cachegate_upstream_duration_seconds_sum\{([^}]*)\} (\S+)$/gm)) {
        if (match[1]!.includes(`op="${op}"`)) sum += Number(match[2])
      }
      return sum * 1000
    },
  }
}

/** `node bench/lib/raw-server.ts <mode> <dir> [hwm]`. */
export async function startRawServer(name: string, mode: 'buffer' | 'stream', dir: string, highWaterMark?: number): Promise<Server> {
  const args = [path.join(ROOT, 'bench/lib/raw-server.ts'), mode, dir]
  if (highWaterMark !== undefined) args.push(String(highWaterMark))
  const child = startChild(name, NODE, args)
  const match = await waitForOutput(child, /"msg":"listening","url":"([^"]+)"/)
  return { name, url: match[1]!, child }
}

/** `node bench/lib/raw-proxy.ts <upstream>`: a bare pipe proxy, the ceiling for a Node relay. */
export async function startRawProxy(upstream: string): Promise<Server> {
  const child = startChild('raw-proxy', NODE, [path.join(ROOT, 'bench/lib/raw-proxy.ts'), upstream])
  const match = await waitForOutput(child, /"msg":"listening","url":"([^"]+)"/)
  return { name: 'raw-proxy', url: match[1]!, child }
}


export function which(command: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', ...(process.env.PATH ?? '').split(':')]) {
    const candidate = path.join(dir, command)
    try {
      execFileSync('test', ['-x', candidate])
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

export function nginxVersion(binary: string): string {
  // nginx prints its version on stderr.
  const out = spawnSync(binary, ['-v'], { encoding: 'utf8' })
  return `${out.stdout ?? ''}${out.stderr ?? ''}`.trim().replace(/^nginx version: /, '') || 'unknown'
}

export interface NginxOptions {
  binary: string
  dir: string
  /** s3rver, reached anonymously (see s3rver-main.ts). */
  upstream: string
  /** A second upstream for `/counted/...` (the counting proxy), path passed on unchanged. */
  countedUpstream: string
  /** worker_processes (default 1). */
  workers?: number
  /** `taskset -c` core list (default the server core). */
  core?: string
}

/**
 * nginx as an operator would deploy it in front of a bucket: one worker, sendfile, no access
 * log, `proxy_cache` on local disk with `proxy_cache_lock` (coalescing), keep-alive upstream.
 * Runs in the foreground (`daemon off`) with everything under `dir`.
 */
export async function startNginx(options: NginxOptions): Promise<Server> {
  const { binary, dir } = options
  await mkdir(path.join(dir, 'logs'), { recursive: true })
  const port = await freePort()
  const upstream = new URL(options.upstream)
  const counted = new URL(options.countedUpstream)
  const user = process.getuid?.() === 0 ? 'user root;' : ''
  const conf = `${user}
worker_processes ${options.workers ?? 1};
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  # No tcp_nopush: with it, 64 KiB Range hits from the cache stalled ~40 ms each (delayed
  # ACK against TCP_CORK), 900 req/s instead of ~26,000 measured here.
  tcp_nodelay on;
  keepalive_timeout 65s;
  # wrk keeps its 32 connections for the whole run; nginx's default (1000) would close them.
  keepalive_requests 100000000;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=objects:16m max_size=4g inactive=1d use_temp_path=off;
  upstream s3 { server ${upstream.host}; keepalive 32; }
  upstream counted { server ${counted.host}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    proxy_http_version 1.1;
    proxy_cache objects;
    proxy_cache_key $uri;
    proxy_cache_valid 200 1d;
    proxy_cache_lock on;
    proxy_cache_lock_timeout 60s;
    proxy_cache_lock_age 60s;
    proxy_ignore_headers Cache-Control Expires Set-Cookie;
    add_header X-Cache-Status $upstream_cache_status;
    # s3rver reads a non-IP Host as a virtual-hosted bucket name: send its real address.
    location /counted/ {
      proxy_pass http://counted/;
      proxy_set_header Host ${counted.host};
      proxy_set_header Connection "";
    }
    location / {
      proxy_pass http://s3;
      proxy_set_header Host ${upstream.host};
      proxy_set_header Connection "";
    }
  }
}
`
  const confFile = path.join(dir, 'nginx.conf')
  await writeFile(confFile, conf)
  const child = startChild('nginx', binary, ['-p', dir, '-e', path.join(dir, 'logs/error.log'), '-c', confFile, '-g', 'daemon off;'], { core: options.core })
  const url = `http://127.0.0.1:${port}`
  // nginx prints nothing when it starts: poll until it answers.
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      await fetch(`${url}/`, { signal: AbortSignal.timeout(500) })
      break
    } catch {
      if (child.process.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start:\n${child.output()}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  return { name: 'nginx', url, child }
}
