/**
 * nginx from the system (Debian's /usr/sbin/nginx) running the SHIPPED deploy/nginx/cachegate.conf
 * unchanged, in front of test gateways: the test writes only what differs per deployment (the
 * listen line and the upstream list, from the shipped cachegate-upstreams.conf's parameters)
 * and a main nginx.conf with every path in a temp directory, so no root is needed.
 * An access log records `$request_method $uri $upstream_addr $status` for each request: which
 * gateway(s) nginx tried is the observable the fleet tests assert on.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ROOT, tempDir } from './gateway.ts'
import { freePort } from './ports.ts'

export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p))
export const SHIPPED_CONF = path.join(ROOT, 'deploy/nginx/cachegate.conf')
export const SHIPPED_UPSTREAMS = path.join(ROOT, 'deploy/nginx/cachegate-upstreams.conf')

export interface AccessLine {
  method: string
  uri: string
  /** Every gateway nginx tried, in order (`$upstream_addr` split on ", "). */
  upstreams: string[]
  status: number
}

export interface NginxFront {
  url: string
  port: number
  dir: string
  /** The access log so far. */
  accessLog(): Promise<AccessLine[]>
  /** The error log so far. */
  errorLog(): Promise<string>
  stop(): Promise<void>
}

/** `server ADDRESS params;` lines with the shipped parameters (max_fails, fail_timeout, ...) kept. */
export async function upstreamLines(addresses: string[]): Promise<string> {
  const shipped = (await readFile(SHIPPED_UPSTREAMS, 'utf8')).split('\n').filter((l) => /^\s*server\s/.test(l))
  return addresses
    .map((address, i) => {
      const line = shipped[Math.min(i, shipped.length - 1)]!
      return `${line.replace(/^(\s*server\s+)\S+/, `$1${address}`)}\n`
    })
    .join('')
}

/** The main nginx.conf of a test: everything under `dir`, the shipped file included verbatim. */
export function mainConf(dir: string, include = SHIPPED_CONF): string {
  const user = process.getuid?.() === 0 ? 'user root;' : ''
  return `${user}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  log_format fleet '$request_method $uri $upstream_addr $status';
  access_log ${dir}/access.log fleet;
  include ${include};
}
`
}

/** Writes the per-deployment files and the main conf into `dir`; returns the main conf's path. */
export async function writeNginxConf(dir: string, port: number, addresses: string[]): Promise<string> {
  await writeFile(path.join(dir, 'cachegate-listen.conf'), `listen 127.0.0.1:${port};\n`)
  await writeFile(path.join(dir, 'cachegate-upstreams.conf'), await upstreamLines(addresses))
  const conf = path.join(dir, 'nginx.conf')
  await writeFile(conf, mainConf(dir))
  return conf
}

/** `nginx -t` on a main conf: the exit code and what nginx printed. */
export function nginxTest(conf: string, dir: string): { code: number | null; output: string } {
  const out = spawnSync(NGINX!, ['-t', '-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf], { encoding: 'utf8' })
  return { code: out.status, output: `${out.stdout}${out.stderr}` }
}

export async function startNginxFront(addresses: string[]): Promise<NginxFront> {
  if (!NGINX) throw new Error('nginx is not installed (apt-get install nginx-light)')
  const dir = await tempDir('cachegate-nginx-')
  await mkdir(path.join(dir, 'client_body'), { recursive: true })
  const port = await freePort()
  const conf = await writeNginxConf(dir, port, addresses)
  // Its own process group, so the workers go with the master whatever happens.
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => (output += d))
  child.stderr!.on('data', (d: Buffer) => (output += d))
  const killOnExit = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  process.once('exit', killOnExit)
  const url = `http://127.0.0.1:${port}`
  // nginx prints nothing when it is up: poll until it answers.
  for (let i = 0; ; i++) {
    try {
      await fetch(`${url}/nginx-start-probe`, { signal: AbortSignal.timeout(500) })
      break
    } catch {
      if (child.exitCode !== null || i > 200) throw new Error(`nginx did not start:\n${output}${await readFile(path.join(dir, 'error.log'), 'utf8').catch(() => '')}`)
      await sleep(25)
    }
  }
  return {
    url,
    port,
    dir,
    async accessLog() {
      const text = await readFile(path.join(dir, 'access.log'), 'utf8').catch(() => '')
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const [method, uri, ...rest] = line.split(' ')
          const status = Number(rest.pop())
          return { method: method!, uri: uri!, upstreams: rest.join(' ').split(', ').filter((u) => u !== '-'), status }
        })
    },
    errorLog: () => readFile(path.join(dir, 'error.log'), 'utf8').catch(() => ''),
    async stop() {
      process.removeListener('exit', killOnExit)
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        await once(child, 'exit')
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}
