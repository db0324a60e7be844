import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { stringify as toYaml } from 'yaml'
import { generateKeyPair } from './auth/keys.ts'
import { presign } from './auth/presign.ts'
import { INSPECT_USAGE, SIGN_USAGE, inspectCommand, signCommand } from './cli/links.ts'
import { PURGE_USAGE, purgeCommand } from './cli/purge.ts'
import { TOKEN_USAGE, tokenCommand } from './cli/token.ts'
import { UsageError, fail } from './cli/usage.ts'
import { ConfigError, loadConfig, validateConfig } from './config/load.ts'
import type { Config } from './config/schema.ts'
import { createLogger, levelFromEnv } from './log.ts'

const USAGE = {
  serve: `Usage: cachegate [--config <file|env>] [--listen host:port]

Runs the gateway.
  --config FILE   YAML config file (see config.example.yaml)
  --config env    config from CACHEGATE_CONFIG (whole YAML) and/or CACHEGATE__SECTION__KEY variables
  --listen ADDR   override the listen address (host:port)
  (no --config)   development mode: serves ./data with freshly generated keys on 127.0.0.1:8080
  --https         development mode only: HTTPS with a self-signed certificate (tls.self_signed)

Other commands: keygen, sign, inspect, token, purge (each takes --help).`,
  keygen: `Usage: cachegate keygen --out FILE [--force]

Writes a fresh Ed25519 key pair as YAML (auth: {public_key, private_key}, base64url), mode 0600.
  --out FILE   where to write (refuses to overwrite an existing file)
  --force      overwrite FILE if it exists`,
  sign: SIGN_USAGE,
  inspect: INSPECT_USAGE,
  token: TOKEN_USAGE,
  purge: PURGE_USAGE,
}


async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (command === 'keygen') return keygen(rest)
  if (command === 'sign') return signCommand(rest)
  if (command === 'inspect') return inspectCommand(rest)
  if (command === 'token') return tokenCommand(rest)
  if (command === 'purge') return purgeCommand(rest)
  if (command !== undefined && !command.startsWith('-')) throw new UsageError(`unknown command "${command}"\n\n${USAGE.serve}`)
  return serveCommand(argv)
}

function keygen(argv: string[]): void {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true })
  if (values.help) return void process.stdout.write(`${USAGE.keygen}\n`)
  if (!values.out) throw new UsageError(`--out is required\n\n${USAGE.keygen}`)
  const keys = generateKeyPair()
  const text = `# cachegate Ed25519 key pair, generated ${new Date().toISOString()}.\n# Keep private_key secret: the gateway itself only needs public_key.\n${toYaml({ auth: keys })}`
  const out = path.resolve(values.out)
  if (values.force) {
    const tmp = `${out}.${randomBytes(4).toString('hex')}.tmp`
    writeFileSync(tmp, text, { mode: 0o600, flag: 'wx' })
    renameSync(tmp, out)
    chmodSync(out, 0o600)
  } else {
    try {
      writeFileSync(out, text, { mode: 0o600, flag: 'wx' })
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') fail(`${values.out} already exists (use --force to overwrite)`, 1)
      throw error
    }
  }
  process.stdout.write(`wrote ${values.out}\npublic_key: ${keys.public_key}\n`)
}

const SAMPLE_KEY = 'hello.txt'
const SAMPLE_BODY = 'Hello from cachegate! This file was served through a presigned link.\n'

/** No config at all: serve ./data with fresh keys, loudly marked as development mode. */
function devConfig(listen: string | undefined, https: boolean): { config: Config; bearer: string; privateKey: string } {
  const keys = generateKeyPair()
  const bearer = randomBytes(24).toString('base64url')
  mkdirSync('data', { recursive: true })
  if (!existsSync(path.join('data', SAMPLE_KEY))) writeFileSync(path.join('data', SAMPLE_KEY), SAMPLE_BODY)
  const config = validateConfig(
    {
      listen: listen ?? '127.0.0.1:8080',
      auth: { ...keys, bearer_token: bearer },
      cache: { max_memory: '64MiB', max_object_size: '8MiB' },
      stores: { local: { type: 'fs', root: './data' } },
      // Any page may use the development gateway (a front end on another port, e.g. Vite's).
      cors: { allowed_origins: ['*'] },
      ...(https ? { tls: { self_signed: true } } : {}),
    },
    'development defaults',
  )
  return { config, bearer, privateKey: keys.private_key }
}

async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, listen: { type: 'string' }, https: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true })
  if (values.help) return void process.stdout.write(`${USAGE.serve}\n`)
  if (values.https && values.config) throw new UsageError('--https is for development mode; with --config set tls.cert and tls.key (or tls.self_signed)')
  let dev: ReturnType<typeof devConfig> | undefined
  let config: Config
  if (values.config) {
    config = loadConfig(values.config, process.env, values.listen ? { listen: values.listen } : {})
  } else {
    dev = devConfig(values.listen, values.https ?? false)
    config = dev.config
  }
  const logger = createLogger(levelFromEnv(config.log.level))
  if (dev) logger.warn('DEVELOPMENT MODE: no --config given; serving ./data with freshly generated keys (they change on every start). Do not use in production.')
  // Loaded here, not at the top: keygen and sign need none of the store SDKs.
  const { startServer } = await import('./server.ts')
  const running = await startServer(config, { logger })
  if (dev) {
    const url = presign({ baseUrl: running.url, bucket: 'local', path: SAMPLE_KEY, expiresIn: 3600, privateKey: dev.privateKey })
    logger.info('development mode: sample presigned URL', { url, bearer_token: dev.bearer })
    process.stderr.write(
      `\n  cachegate DEVELOPMENT MODE (not for production)\n` +
        `  serving ./data as bucket "local" on ${running.url}\n` +
        `  presigned URL (1 h):  ${url}\n` +
        `  bearer token:         curl ${values.https ? '-k ' : ''}-H 'Authorization: Bearer ${dev.bearer}' ${running.url}/local/${SAMPLE_KEY}\n\n`,
    )
  }
  // SIGHUP re-reads tls.cert and tls.key (after a renewal); without them it keeps its default.
  if (running.reloadTls) {
    const reload = running.reloadTls
    process.on('SIGHUP', () => void reload())
  }
  // SIGTERM (an orchestrator) drains first; SIGINT (Ctrl-C) skips the drain wait. A second
  // signal of either kind exits at once.
  let stopping = false
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) {
        logger.warn('second signal: exiting now', { signal })
        process.exit(1)
      }
      stopping = true
      logger.info('shutting down', { signal })
      void running.close({ drain: signal === 'SIGTERM' }).then(() => process.exit(0))
    })
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) fail(error.message, 1)
  if (error instanceof UsageError) fail(error.message, 2)
  if ((error as Error).name === 'TlsError') fail((error as Error).message, 1)
  const code = (error as NodeJS.ErrnoException).code
  if (code?.startsWith('ERR_PARSE_ARGS')) fail(`${(error as Error).message} (see --help)`, 2)
  if (code === 'EADDRINUSE' || code === 'EACCES') fail(`cannot listen: ${code}`, 1)
  process.stderr.write(`cachegate: fatal: ${(error as Error).stack ?? String(error)}\n`)
  process.exit(1)
})
