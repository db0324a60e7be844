/**
 * Starts a real gateway on 127.0.0.1:0 in-process, and raw HTTP helpers that send the
 * request-target exactly as written (fetch would normalise `..` and encodings away).
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPair, type KeyPair } from '../../src/auth/keys.ts'
import { validateConfig } from '../../src/config/load.ts'
import type { Config } from '../../src/config/schema.ts'
import type { ObjectHooks } from '../../src/http/object/index.ts'
import { type Logger, createLogger } from '../../src/log.ts'
import { type RunningServer, startServer } from '../../src/server.ts'
import type { Store } from '../../src/stores/types.ts'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const NODE = process.execPath
export const BEARER = 'test-bearer-token-0123456789'

export interface TestGateway extends RunningServer {
  config: Config
  keys: KeyPair
  root: string
}

export async function tempDir(prefix = 'cachegate-test-'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix))
}

/** A gateway over an fs store `local` (unless `stores` says otherwise), with fresh keys. */
export async function startGateway(
  options: { raw?: Record<string, unknown>; stores?: Map<string, Store>; root?: string; logger?: Logger; objectHooks?: ObjectHooks; now?: () => number } = {},
): Promise<TestGateway> {
  const keys = generateKeyPair()
  const root = options.root ?? (await tempDir())
  const raw = options.raw ?? {}
  const config = validateConfig({
    listen: '127.0.0.1:0',
    auth: { ...keys, bearer_token: BEARER },
    stores: { local: { type: 'fs', root } },
    ...raw,
    cache: { max_memory: '64MiB', max_object_size: '8MiB', ...(raw.cache as object | undefined) },
    log: { level: process.env.TEST_LOG_LEVEL ?? 'silent' },
  })
  const running = await startServer(config, { logger: options.logger ?? createLogger(config.log.level), stores: options.stores, objectHooks: options.objectHooks, now: options.now })
  return { ...running, config, keys, root }
}

export interface RawResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

/** One HTTP request with the path sent verbatim. */
export function rawRequest(base: string, method: string, target: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<RawResponse> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs `node src/main.ts ...args` to completion (killed after `timeoutMs`: code null). */
export async function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawn(NODE, [path.join(ROOT, 'src/main.ts'), ...args], { cwd: options.cwd ?? ROOT, env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d))
  child.stderr.on('data', (d: Buffer) => (stderr += d))
  const timer = options.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), options.timeoutMs)
  const [code] = (await once(child, 'close')) as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

/** Starts the CLI as a server and resolves once `pattern` appears in its output. */
export async function spawnCli(args: string[], pattern: RegExp, options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const child = spawn(NODE, [path.join(ROOT, 'src/main.ts'), ...args], { cwd: options.cwd ?? ROOT, env: options.env ?? cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}; output:\n${output}`)), 15_000)
    const onData = (d: Buffer) => {
      output += d
      const m = pattern.exec(output)
      if (m) {
        clearTimeout(timer)
        resolve(m)
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`exited with ${code} before ${pattern}; output:\n${output}`))
    })
  })
  return {
    match,
    output: () => output,
    /** The exit code or signal, once the process has ended; undefined while it runs. */
    exited: () => child.exitCode ?? child.signalCode ?? undefined,
    async stop() {
      child.removeAllListeners('exit')
      if (child.exitCode !== null) return
      // SIGINT: shut down without the SIGTERM drain wait (shutdown.drain_seconds).
      child.kill('SIGINT')
      await once(child, 'exit')
    },
  }
}

/** The environment minus any CACHEGATE variables the developer may have set. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CACHEGATE') && k !== 'LOG_LEVEL'))
  return { ...env, ...extra }
}
