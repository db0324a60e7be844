import { readFileSync } from 'node:fs'
import { type YAMLError, parseDocument } from 'yaml'
import type { z } from 'zod'
import { type Config, configSchema } from './schema.ts'

/** Every problem with a config, each as `key.path: message`. Never contains a value. */
export class ConfigError extends Error {
  override name = 'ConfigError'
  readonly problems: string[]
  constructor(source: string, problems: string[]) {
    super(`invalid config (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.problems = problems
  }
}

const ENV_PREFIX = 'CACHEGATE__'

/**
 * Loads and validates the config once, at start-up.
 * `source` is a YAML file path, or `env` for `CACHEGATE_CONFIG` (a whole YAML document)
 * and/or flat `CACHEGATE__SECTION__KEY` variables, the flat ones winning.
 */
export function loadConfig(source: string, env: NodeJS.ProcessEnv = process.env, overrides: Record<string, unknown> = {}): Config {
  if (source === 'env') {
    const whole = env.CACHEGATE_CONFIG ? parseYamlText(env.CACHEGATE_CONFIG, 'CACHEGATE_CONFIG') : {}
    const flat = configFromFlatEnv(env)
    if (!env.CACHEGATE_CONFIG && Object.keys(flat).length === 0) {
      throw new ConfigError('env', ['no configuration: set CACHEGATE_CONFIG or CACHEGATE__* variables'])
    }
    return validateConfig(deepMerge(deepMerge(whole, flat), overrides), 'env')
  }
  let text: string
  try {
    text = readFileSync(source, 'utf8')
  } catch (error) {
    throw new ConfigError(source, [`cannot read file (${(error as NodeJS.ErrnoException).code ?? 'error'})`])
  }
  return validateConfig(deepMerge(parseYamlText(text, source), overrides), source)
}

export function validateConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw ?? {}, { error: describeIssue })
  if (result.success) return result.data
  throw new ConfigError(source, result.error.issues.map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`))
}

/** Short messages that never echo the value (it may be a secret). */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code === 'invalid_type' && issue.input === undefined) return 'required'
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`
  if (issue.code === 'invalid_type') return `expected ${issue.expected}`
  return undefined
}

/**
 * Parses one YAML document. Errors and warnings alike fail the load: a warning means the text
 * does not say what it seems to (an unknown tag such as `!!weird secret` would silently become
 * a string). Each is reported by code and position only: the library's own messages quote the
 * offending line, which may hold a secret.
 */
function parseYamlText(text: string, source: string): unknown {
  // logLevel 'error': the library prints nothing itself (at 'warn' it emits every warning as a
  // process warning, line included). Not 'silent', which would also drop the MULTIPLE_DOCS error.
  const doc = parseDocument(text, { logLevel: 'error' })
  const problems = [...doc.errors.map((e) => describeYamlProblem(e, 'YAML syntax error')), ...doc.warnings.map((w) => describeYamlProblem(w, yamlWarningLabel(w)))]
  if (problems.length > 0) throw new ConfigError(source, problems)
  try {
    return doc.toJS()
  } catch (error) {
    // toJS throws for an alias bomb or an unresolvable alias; its message is safe to drop too.
    throw new ConfigError(source, [`YAML error (${(error as Error).name})`])
  }
}

function yamlWarningLabel(warning: YAMLError): string {
  return warning.code === 'TAG_RESOLVE_FAILED' || warning.code === 'BAD_COLLECTION_TYPE' ? 'unknown YAML tag' : 'YAML warning, treated as an error'
}

function describeYamlProblem(problem: YAMLError, label: string): string {
  const pos = problem.linePos?.[0]
  return `${label} (${problem.code})${pos ? ` at line ${pos.line}, column ${pos.col}` : ''}`
}

/**
 * `CACHEGATE__STORES__media__ENDPOINT=x` → `{ stores: { media: { endpoint: 'x' } } }`.
 * Section and key names are case-insensitive; store ids are kept verbatim. Empty values are unset.
 */
/** Keys whose flat environment value is a comma-separated list. */
const LIST_KEYS = new Set(['previous_public_keys', 'fallback', 'trust_proxy', 'allowed_origins', 'allowed_methods', 'allowed_headers', 'expose_headers'])

export function configFromFlatEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined || value === '') continue
    const parts = name.slice(ENV_PREFIX.length).split('__')
    const path = parts.map((part, i) => (i === 1 && parts[0]!.toLowerCase() === 'stores' ? part : part.toLowerCase()))
    if (path.some((p) => p === '')) continue
    let node = out
    for (const part of path.slice(0, -1)) {
      const next = node[part]
      node = (typeof next === 'object' && next !== null ? next : (node[part] = {})) as Record<string, unknown>
    }
    const leaf = path.at(-1)!
    node[leaf] = LIST_KEYS.has(leaf) ? value.split(',').map((s) => s.trim()).filter(Boolean) : value
  }
  return out
}

function deepMerge(base: unknown, over: Record<string, unknown>): unknown {
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return over
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) }
  for (const [key, value] of Object.entries(over)) {
    out[key] = typeof value === 'object' && value !== null && !Array.isArray(value) ? deepMerge(out[key], value as Record<string, unknown>) : value
  }
  return out
}

export type { Config }
