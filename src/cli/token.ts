/**
 * `cachegate token new`: mints a scoped bearer token, prints it once, and prints the
 * `auth.tokens` entry to paste (which holds only its SHA-256).
 */
import { parseArgs } from 'node:util'
import { stringify as toYaml } from 'yaml'
import { TOKEN_METHODS, generateToken, hashToken } from '../auth/tokens.ts'
import { UsageError } from './usage.ts'

export const TOKEN_USAGE = `Usage: cachegate token new --id ID --buckets B[,B...] --methods M[,M...] [--prefix P/]

Prints a new bearer token (once: it is not stored anywhere) and the auth.tokens entry to
paste into the config, which holds only the token's SHA-256.
  --id ID         names the token in logs and metrics (letters, digits, ".", "_", "-")
  --buckets LIST  bucket ids it may use, comma-separated; "*" for all
  --methods LIST  any of GET, HEAD, PUT, ADMIN, comma-separated (GET also allows HEAD)
  --prefix P/     only keys starting with P/ (must end with "/")`

const list = (value: string | undefined) => (value ?? '').split(',').map((s) => s.trim()).filter(Boolean)

export function tokenCommand(argv: string[]): void {
  const [sub, ...rest] = argv
  if (sub === '--help' || sub === '-h') return void process.stdout.write(`${TOKEN_USAGE}\n`)
  if (sub !== 'new') throw new UsageError(`unknown token command ${JSON.stringify(sub ?? '')}\n\n${TOKEN_USAGE}`)
  const { values } = parseArgs({
    args: rest,
    options: { id: { type: 'string' }, buckets: { type: 'string' }, methods: { type: 'string' }, prefix: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  })
  if (values.help) return void process.stdout.write(`${TOKEN_USAGE}\n`)
  const buckets = list(values.buckets)
  const methods = list(values.methods).map((m) => m.toUpperCase())
  if (!values.id || buckets.length === 0 || methods.length === 0) throw new UsageError(`--id, --buckets and --methods are required\n\n${TOKEN_USAGE}`)
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(values.id)) throw new UsageError('--id must be letters, digits, ".", "_" or "-" (at most 64)')
  const unknown = methods.filter((m) => !(TOKEN_METHODS as readonly string[]).includes(m))
  if (unknown.length) throw new UsageError(`--methods: unknown ${unknown.join(', ')} (use ${TOKEN_METHODS.join(', ')})`)
  if (values.prefix !== undefined && !(values.prefix.length > 1 && values.prefix.endsWith('/'))) throw new UsageError('--prefix must end with "/"')
  const token = generateToken()
  const entry = { id: values.id, sha256: hashToken(token), buckets, methods, ...(values.prefix ? { prefix: values.prefix } : {}) }
  process.stdout.write(
    `token: ${token}\n` +
      `# Shown once: give it to the client (Authorization: Bearer <token>); the gateway keeps only its hash.\n` +
      `# Paste under auth.tokens in the config:\n` +
      toYaml([entry]),
  )
}
