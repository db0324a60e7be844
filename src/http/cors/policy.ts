/**
 * A CORS policy per store, resolved once from `cors:` and `stores.<id>.cors:` with every
 * header value precomputed: per request only a Set lookup and constant strings remain.
 */
import type { Config, CorsConfig } from '../../config/schema.ts'
import { OriginMatcher, parseOriginRule } from './origins.ts'

export const CORS_DEFAULTS = {
  allowed_methods: ['GET', 'HEAD', 'PUT'],
  allowed_headers: ['authorization', 'content-type', 'range', 'if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since', 'if-range'],
  expose_headers: ['ETag', 'Content-Range', 'Content-Length', 'Accept-Ranges', 'Last-Modified', 'Content-Disposition', 'X-CG-Status'],
  max_age_seconds: 600,
  allow_credentials: false,
  allow_private_network: false,
} as const

export interface CorsPolicy {
  origins: OriginMatcher
  /**
   * The answer depends on the request's `Origin` (anything but `*` without credentials):
   * every response says `Vary: Origin`, so a cache (the browser's own included) never hands
   * the answer for one origin, or for a request with none, to another.
   */
  varies: boolean
  credentials: boolean
  privateNetwork: boolean
  methods: ReadonlySet<string>
  /** undefined: any header (`*`), the requested ones are echoed. */
  headers: ReadonlySet<string> | undefined
  allowMethods: string
  allowHeaders: string
  /** undefined when nothing is exposed. */
  exposeHeaders: string | undefined
  maxAge: string
}

/** The policy of a section: its own keys, then `inherited`'s, then the defaults. */
export function createCorsPolicy(section: CorsConfig, inherited: CorsConfig = {}): CorsPolicy {
  const pick = <K extends keyof CorsConfig>(key: K) => section[key] ?? inherited[key]
  const origins = new OriginMatcher((pick('allowed_origins') ?? []).map(parseOriginRule))
  const credentials = pick('allow_credentials') ?? CORS_DEFAULTS.allow_credentials
  const methods = pick('allowed_methods') ?? CORS_DEFAULTS.allowed_methods
  const headers: readonly string[] = pick('allowed_headers') ?? CORS_DEFAULTS.allowed_headers
  const expose = pick('expose_headers') ?? CORS_DEFAULTS.expose_headers
  return {
    origins,
    varies: !origins.any || credentials,
    credentials,
    privateNetwork: pick('allow_private_network') ?? CORS_DEFAULTS.allow_private_network,
    methods: new Set(methods),
    headers: headers.includes('*') ? undefined : new Set(headers.map((h) => h.toLowerCase())),
    allowMethods: [...new Set(methods)].join(', '),
    allowHeaders: [...new Set(headers)].join(', '),
    exposeHeaders: expose.length > 0 ? [...new Set(expose)].join(', ') : undefined,
    maxAge: String(pick('max_age_seconds') ?? CORS_DEFAULTS.max_age_seconds),
  }
}

export interface CorsPolicies {
  /** The top-level policy: buckets without a section of their own, unknown buckets, unparsable paths. */
  fallback: CorsPolicy | undefined
  byStore: ReadonlyMap<string, CorsPolicy | undefined>
}

/** Every store's policy, or undefined when no section is configured anywhere (no CORS at all). */
export function resolveCorsPolicies(config: Pick<Config, 'cors' | 'stores'>): CorsPolicies | undefined {
  const sections = Object.entries(config.stores).filter(([, store]) => store.cors !== undefined)
  if (config.cors === undefined && sections.length === 0) return undefined
  const fallback = config.cors && createCorsPolicy(config.cors)
  const byStore = new Map<string, CorsPolicy | undefined>()
  for (const [id, store] of Object.entries(config.stores)) byStore.set(id, store.cors ? createCorsPolicy(store.cors, config.cors) : fallback)
  return { fallback, byStore }
}
