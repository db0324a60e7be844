/**
 * `cachegate sign` (mint a link, version 1 or 2) and `cachegate inspect` (decode one and say,
 * against a config, whether it verifies now and if not why).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { parse as parseYaml } from 'yaml'
import { publicKeyOf } from '../auth/keys.ts'
import { createAuthenticator } from '../auth/middleware.ts'
import { type PresignOptions, SIGNABLE_METHODS, type SignableMethod, presign } from '../auth/presign.ts'
import { loadConfig } from '../config/load.ts'
import type { Config } from '../config/schema.ts'
import { parseSeconds } from '../config/duration.ts'
import { parseSize } from '../config/size.ts'
import { AuthError, ForbiddenError } from '../errors.ts'
import { parseObjectPath } from '../http/object/target.ts'
import { UsageError, fail } from './usage.ts'

export const SIGN_USAGE = `Usage: cachegate sign --bucket B (--path P | --prefix P/) [--method M]... [--expires-in 3600]
                     [--base-url URL] (--config FILE | --keys FILE) [version 2 options]

Prints a presigned URL: a version 1 link (Cachegate's format), or version 2 when any
scope option below is given.
  --bucket B          bucket id (a configured store)
  --path P            object key, unencoded (e.g. "photos/a b.jpg")
  --method M          GET (default), HEAD or PUT; repeat for several (version 2)
  --expires-in T      lifetime: seconds, or 30s, 10m, 1h, 7d (default 3600)
  --base-url URL      where the gateway is reachable (default: from --config's listen, else http://127.0.0.1:8080)
  --config FILE       read auth.private_key from a config file ("env" for the environment)
  --keys FILE         read auth.private_key from a keygen file
Version 2 (refused by Cachegate and older gateways rather than half-understood):
  --prefix P/         any key starting with P/ (instead of one --path; with both, the URL names --path)
  --not-before T      not valid until T from now (seconds, 10m, ...)
  --key-id ID         the id of the verifying key in auth.keys (checked against --config)
  --ip ADDR           only for this client address or CIDR (10.0.0.0/8, 2001:db8::/32)
  --max-size SIZE     PUT: largest body accepted (e.g. 10MiB): 413 above it
  --content-type T    PUT: the Content-Type the upload must declare: 415 otherwise
  --filename NAME     GET: download as NAME (Content-Disposition: attachment)
  --inline            GET: Content-Disposition inline (with --filename: inline with that name)`

export const INSPECT_USAGE = `Usage: cachegate inspect URL [--config FILE] [--method M] [--client ADDR]

Decodes a presigned URL and prints its payload. With --config, says whether the link
verifies now against that config's keys, and if not why (expired, wrong key, scope...).
  --config FILE    the gateway's config ("env" for the environment)
  --method M       the request method to check (default: the link's first method)
  --client ADDR    the client address to check an ip-bound link against`

function duration(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const negative = value.startsWith('-')
  const seconds = parseSeconds(negative ? value.slice(1) : value)
  if (seconds === undefined) throw new UsageError(`${flag} must be a duration: seconds, or 30s, 10m, 1h, 7d`)
  return negative ? -seconds : seconds
}

export function signCommand(argv: string[]): void {
  const { values } = parseArgs({
    args: argv,
    options: {
      bucket: { type: 'string' },
      path: { type: 'string' },
      prefix: { type: 'string' },
      method: { type: 'string', multiple: true },
      'expires-in': { type: 'string', default: '3600' },
      'not-before': { type: 'string' },
      'key-id': { type: 'string' },
      ip: { type: 'string' },
      'max-size': { type: 'string' },
      'content-type': { type: 'string' },
      filename: { type: 'string' },
      inline: { type: 'boolean' },
      'base-url': { type: 'string' },
      config: { type: 'string' },
      keys: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) return void process.stdout.write(`${SIGN_USAGE}\n`)
  if (!values.bucket || (!values.path && !values.prefix)) throw new UsageError(`--bucket and --path (or --prefix) are required\n\n${SIGN_USAGE}`)
  if (Boolean(values.config) === Boolean(values.keys)) throw new UsageError(`give exactly one of --config or --keys\n\n${SIGN_USAGE}`)
  const methods = (values.method ?? ['GET']).map((m) => m.toUpperCase())
  if (!methods.every((m) => (SIGNABLE_METHODS as readonly string[]).includes(m))) throw new UsageError(`--method must be one of ${SIGNABLE_METHODS.join(', ')}`)
  const expiresIn = duration('--expires-in', values['expires-in'])!
  if (!(expiresIn > 0)) throw new UsageError('--expires-in must be a positive duration')
  let maxSize: number | undefined
  if (values['max-size'] !== undefined) {
    maxSize = parseSize(values['max-size'])
    if (maxSize === undefined) throw new UsageError('--max-size must be a size (4096, 10MiB, 1GB)')
  }

  let privateKey: string | undefined
  let baseUrl = values['base-url']
  let config: Config | undefined
  if (values.config) {
    config = loadConfig(values.config)
    privateKey = config.auth.private_key
    baseUrl ??= baseUrlOf(config)
  } else {
    privateKey = privateKeyFromFile(values.keys!)
  }
  if (!privateKey || !publicKeyOf(privateKey)) fail('no valid auth.private_key found (run `cachegate keygen --out auth.keys.yaml`)', 1)
  const keyId = values['key-id']
  if (keyId !== undefined && config) {
    const entry = config.auth.keys.find((k) => k.id === keyId)
    if (!entry) fail(`no key with id "${keyId}" in auth.keys of ${values.config}`, 1)
    if (entry.public_key !== publicKeyOf(privateKey)) fail(`auth.private_key is not the private half of key "${keyId}"`, 1)
  }
  const options: PresignOptions = {
    baseUrl: baseUrl ?? 'http://127.0.0.1:8080',
    bucket: values.bucket,
    path: values.path,
    prefix: values.prefix,
    method: methods.length === 1 ? (methods[0] as SignableMethod) : (methods as SignableMethod[]),
    expiresIn,
    privateKey,
    notBefore: duration('--not-before', values['not-before']),
    keyId,
    ip: values.ip,
    maxSize,
    contentType: values['content-type'],
    filename: values.filename,
    disposition: values.inline ? 'inline' : undefined,
  }
  let url: string
  try {
    url = presign(options)
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(error.message)
    throw error
  }
  process.stdout.write(`${url}\n`)
}

function privateKeyFromFile(file: string): string | undefined {
  let doc: { auth?: { private_key?: unknown } } | undefined
  try {
    // logLevel 'error': a YAML warning would otherwise be printed with its line (the private key).
    doc = parseYaml(readFileSync(file, 'utf8'), { logLevel: 'error' }) as typeof doc
  } catch (error) {
    fail(`cannot read keys from ${file}: ${(error as Error).name}`, 1)
  }
  return typeof doc?.auth?.private_key === 'string' ? doc.auth.private_key : undefined
}

export function baseUrlOf(config: Config): string {
  const { host, port } = config.listen
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  return `http://${shown}:${port}`
}

const when = (seconds: number, nowMs: number) => {
  const delta = Math.round(seconds - nowMs / 1000)
  return `${new Date(seconds * 1000).toISOString()} (${delta >= 0 ? `in ${delta} s` : `${-delta} s ago`})`
}

/** Prints what a link says and, against a config, whether it verifies now. Exit code 1 when it does not. */
export function inspectCommand(argv: string[]): void {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { config: { type: 'string' }, method: { type: 'string' }, client: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  })
  if (values.help) return void process.stdout.write(`${INSPECT_USAGE}\n`)
  if (positionals.length !== 1) throw new UsageError(`give one URL\n\n${INSPECT_USAGE}`)
  let url: URL
  try {
    url = new URL(positionals[0]!)
  } catch {
    throw new UsageError('not a URL')
  }
  const sig = url.searchParams.get('sig')
  if (!sig) fail('the URL has no sig parameter', 1)
  const encoded = sig.split('.')[0]!
  let payload: Record<string, unknown>
  try {
    payload = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8')) as Record<string, unknown>
    if (typeof payload !== 'object' || payload === null) throw new TypeError('not an object')
  } catch {
    fail('the sig payload is not base64url JSON', 1)
  }
  const now = Date.now()
  const lines = [`version: ${String(payload.v)}${payload.v === 1 ? " (Cachegate's format)" : payload.v === 2 ? ' (scoped; Cachegate refuses it)' : ' (unknown)'}`, `payload: ${JSON.stringify(payload)}`]
  if (typeof payload.exp === 'number') lines.push(`expires: ${when(payload.exp, now)}`)
  if (typeof payload.nbf === 'number') lines.push(`not before: ${when(payload.nbf, now)}`)
  if (typeof payload.kid === 'string') lines.push(`key id: ${payload.kid}`)
  let target: { bucket: string; key: string }
  try {
    target = parseObjectPath(url.pathname)
  } catch (error) {
    lines.push(`path: refused (${(error as Error).message})`)
    process.stdout.write(`${lines.join('\n')}\n`)
    process.exit(1)
  }
  lines.push(`request: bucket "${target.bucket}", key "${target.key}"`)
  if (!values.config) {
    lines.push('signature: not checked (give --config to check it against a gateway config)')
    process.stdout.write(`${lines.join('\n')}\n`)
    return
  }
  const config = loadConfig(values.config)
  const firstMethod = Array.isArray(payload.m) ? payload.m[0] : payload.m
  const method = (values.method ?? (typeof firstMethod === 'string' ? firstMethod : 'GET')).toUpperCase()
  const { auth } = config
  const authenticate = createAuthenticator({
    publicKey: auth.public_key,
    previousPublicKeys: auth.previous_public_keys.filter((k): k is string => Boolean(k)),
    keys: auth.keys,
    maxLinkLifetime: auth.max_link_lifetime,
  })
  const verdict = (() => {
    try {
      authenticate({ method, bucket: target.bucket, key: target.key, sig, client: values.client === undefined ? undefined : () => values.client! })
      if (!Object.hasOwn(config.stores, target.bucket)) return { ok: false, text: `signature and scope are valid, but no store "${target.bucket}" is configured (404)` }
      return { ok: true, text: `verifies now for ${method}` }
    } catch (error) {
      if (error instanceof ForbiddenError && error.reason === 'ip' && values.client === undefined) {
        return { ok: false, text: `${error.message}: give --client ADDR to check an address` }
      }
      if (error instanceof ForbiddenError) return { ok: false, text: `refused (403, scope): ${error.message}` }
      if (error instanceof AuthError) return { ok: false, text: `refused (401): ${explain(error)}` }
      throw error
    }
  })()
  lines.push(`against ${values.config}: ${verdict.text}`)
  process.stdout.write(`${lines.join('\n')}\n`)
  if (!verdict.ok) process.exitCode = 1
}

function explain(error: AuthError): string {
  if (error.reason === 'bad signature') {
    if (error.message === 'bad signature') return 'wrong key: not signed by any key of this config'
    return `wrong key: ${error.message}`
  }
  if (error.reason === 'presigned links not enabled') return 'this config has no public key (auth.public_key or auth.keys)'
  return error.message === error.reason ? error.shown : `${error.shown} (${error.message})`
}
