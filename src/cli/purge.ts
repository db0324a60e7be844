/**
 * `cachegate purge`: asks a running gateway to drop cached copies (POST /_admin/purge). The
 * admin token comes from the environment or a file, never from argv (the process list).
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { UsageError, fail } from './usage.ts'

export const PURGE_USAGE = `Usage: cachegate purge --url URL --bucket B (--path P | --prefix P | --all)
                      [--token-file FILE]

Drops cached copies from a running gateway (POST /_admin/purge) and prints how many entries
it dropped. The admin token (one of auth.tokens with the ADMIN method, or the one whose
SHA-256 is auth.admin_token_sha256) comes from the
environment variable CACHEGATE_ADMIN_TOKEN or from --token-file, never from the command line
(where other users could read it in the process list).
  --url URL          the gateway, e.g. http://127.0.0.1:8080
  --bucket B         bucket id (a configured store)
  --path P           one object key, unencoded
  --prefix P         every object whose key starts with P
  --all              every object of the bucket (the same as an empty prefix)
  --token-file FILE  read the admin token from FILE (first line)`

export async function purgeCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      bucket: { type: 'string' },
      path: { type: 'string' },
      prefix: { type: 'string' },
      all: { type: 'boolean' },
      'token-file': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) return void process.stdout.write(`${PURGE_USAGE}\n`)
  if (!values.url || !values.bucket) throw new UsageError(`--url and --bucket are required\n\n${PURGE_USAGE}`)
  const targets = [values.path !== undefined, values.prefix !== undefined, values.all === true].filter(Boolean).length
  if (targets !== 1) throw new UsageError(`give exactly one of --path, --prefix and --all\n\n${PURGE_USAGE}`)
  if (!URL.canParse(values.url)) throw new UsageError('--url must be a URL, e.g. http://127.0.0.1:8080')
  let token = process.env.CACHEGATE_ADMIN_TOKEN || undefined
  if (values['token-file']) {
    try {
      token = readFileSync(values['token-file'], 'utf8').split(/\r?\n/)[0]?.trim()
    } catch (error) {
      fail(`cannot read --token-file: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, 1)
    }
  }
  if (!token) throw new UsageError('no admin token: set CACHEGATE_ADMIN_TOKEN or pass --token-file')
  const body = values.path !== undefined ? { bucket: values.bucket, path: values.path } : { bucket: values.bucket, prefix: values.prefix ?? '', ...(values.all ? { all: true } : {}) }
  const response = await fetch(new URL('/_admin/purge', values.url), {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
  const text = await response.text()
  if (!response.ok) fail(`purge failed: ${response.status} ${text.trim()}`, 1)
  process.stdout.write(`${text.trim()}\n`)
}
