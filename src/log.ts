import { LOG_LEVELS } from './config/schema.ts'

export type LogLevel = (typeof LOG_LEVELS)[number]
export type LogFields = Record<string, unknown>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  readonly level: LogLevel
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

/** Serialises an Error's name, message and cause chain; never its own enumerable props (may hold requests). */
function serialiseError(error: unknown, depth = 0): unknown {
  if (!(error instanceof Error)) return String(error)
  const out: Record<string, unknown> = { name: error.name, message: error.message }
  const code = (error as NodeJS.ErrnoException).code
  if (code) out.code = code
  if (error.cause !== undefined && depth < 3) out.cause = serialiseError(error.cause, depth + 1)
  return out
}

/**
 * One JSON object per line on stdout (or the given sink), filtered by level.
 * `LOG_LEVEL` in the environment overrides the configured level.
 */
export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const min = RANK[level]
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields) => {
    if (RANK[lvl] < min) return
    const record: LogFields = { time: new Date().toISOString(), level: lvl, msg, ...fields }
    if (record.err !== undefined) record.err = serialiseError(record.err)
    write(`${JSON.stringify(record)}\n`)
  }
  return {
    level,
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
  }
}

export function levelFromEnv(configured: LogLevel, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const fromEnv = env.LOG_LEVEL?.toLowerCase()
  return (LOG_LEVELS as readonly string[]).includes(fromEnv ?? '') ? (fromEnv as LogLevel) : configured
}
