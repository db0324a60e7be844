/**
 * CORS on the object routes (Fetch standard §3.2), as the two object hooks: `beforeAuth`
 * answers a preflight `OPTIONS` (no auth: 204, or 403 with no CORS headers), `decorate` adds
 * `Access-Control-*` and `Vary: Origin` to every other object response, errors included, so a
 * page can read why its request failed.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { Config } from '../../config/schema.ts'
import { CorsRefusedError } from '../../errors.ts'
import type { ObjectHooks } from '../object/types.ts'
import { type CorsPolicies, type CorsPolicy, resolveCorsPolicies } from './policy.ts'

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/

/**
 * The CORS hooks for `config`, combined with `hooks` (theirs run first), or `hooks` alone
 * when no `cors` section is configured anywhere: then nothing is added to any response.
 *
 * @example
 * createObjectHandler({ ..., hooks: withCors(config, deps.objectHooks) })
 */
export function withCors(config: Pick<Config, 'cors' | 'stores'>, hooks?: ObjectHooks): ObjectHooks | undefined {
  const policies = resolveCorsPolicies(config)
  if (!policies) return hooks
  const cors = createCorsHooks(policies)
  if (!hooks) return cors
  const { beforeAuth, decorate } = hooks
  return {
    beforeAuth: beforeAuth ? (incoming, outgoing, target) => beforeAuth(incoming, outgoing, target) || cors.beforeAuth!(incoming, outgoing, target) : cors.beforeAuth,
    decorate: decorate
      ? (incoming, headers, target) => {
          decorate(incoming, headers, target)
          cors.decorate!(incoming, headers, target)
        }
      : cors.decorate,
  }
}

export function createCorsHooks(policies: CorsPolicies): ObjectHooks {
  const { fallback, byStore } = policies
  const policyOf = (bucket: string | undefined) => (bucket === undefined ? fallback : byStore.has(bucket) ? byStore.get(bucket) : fallback)

  return {
    /** Every OPTIONS to a bucket with a policy is answered here: it is never a 405. */
    beforeAuth: function corsPreflight(incoming, outgoing, target) {
      if (incoming.method !== 'OPTIONS') return false
      const policy = policyOf(target.bucket)
      if (!policy) return false
      outgoing.writeHead(204, preflightHeaders(policy, incoming.headers)).end()
      return true
    },
    /**
     * Runs on every object response of a bucket with a policy. A request without `Origin`
     * gets the same headers a cross-origin one would share (`ACAO: *`, or `Vary: Origin`):
     * the browser's cache keeps the answer to an `<img>` or a plain navigation and would
     * otherwise reuse it, CORS headers missing, for a later `fetch()` of the same URL.
     */
    decorate: function corsHeaders(incoming, headers, target) {
      const policy = policyOf(target?.bucket)
      // A refused preflight (403) carries no CORS headers (Fetch §4.8: it fails either way).
      if (!policy || incoming.method === 'OPTIONS') return
      if (!policy.varies) {
        headers.setHeader('Access-Control-Allow-Origin', '*')
        if (policy.exposeHeaders) headers.setHeader('Access-Control-Expose-Headers', policy.exposeHeaders)
        return
      }
      headers.appendHeader('Vary', 'Origin')
      const origin = incoming.headers.origin
      if (origin === undefined || !allowsOrigin(policy, origin)) return
      headers.setHeader('Access-Control-Allow-Origin', origin)
      if (policy.credentials) headers.setHeader('Access-Control-Allow-Credentials', 'true')
      if (policy.exposeHeaders) headers.setHeader('Access-Control-Expose-Headers', policy.exposeHeaders)
    },
  }
}

/**
 * With credentials, `*` cannot be sent (Fetch §3.2.5: the browser refuses it): the origin
 * is echoed instead, `null` excepted (any sandboxed page sends it).
 */
function allowsOrigin(policy: CorsPolicy, origin: string): boolean {
  return policy.origins.allows(origin) && !(policy.credentials && origin === 'null')
}

/** The 204's headers, or throws `CorsRefusedError` saying which part of the preflight is not allowed. */
export function preflightHeaders(policy: CorsPolicy, request: IncomingHttpHeaders): OutgoingHttpHeaders {
  const { origin } = request
  const method = request['access-control-request-method']
  if (origin === undefined || method === undefined) throw new CorsRefusedError('not a CORS preflight: Origin and Access-Control-Request-Method are required')
  if (!allowsOrigin(policy, origin)) throw new CorsRefusedError('origin not allowed')
  if (!policy.methods.has(method)) throw new CorsRefusedError(`method not allowed (allowed: ${policy.allowMethods})`)
  const requested = requestedHeaders(request['access-control-request-headers'])
  if (policy.headers) {
    const refused = requested.find((name) => !policy.headers!.has(name))
    if (refused !== undefined) throw new CorsRefusedError(`request header "${refused}" not allowed (allowed: ${policy.allowHeaders})`)
  }
  // Private Network Access: a public page asking for a gateway on a private address.
  const privateNetwork = request['access-control-request-private-network'] === 'true'
  if (privateNetwork && !policy.privateNetwork) throw new CorsRefusedError('private network access not allowed')
  const headers: OutgoingHttpHeaders = {
    'Access-Control-Allow-Origin': policy.varies ? origin : '*',
    'Access-Control-Allow-Methods': policy.allowMethods,
    'Access-Control-Max-Age': policy.maxAge,
  }
  if (policy.varies) headers.Vary = 'Origin'
  if (policy.credentials) headers['Access-Control-Allow-Credentials'] = 'true'
  // `*` in allowed_headers: echo what was asked (the wildcard would not cover Authorization).
  const allowHeaders = policy.headers ? policy.allowHeaders : requested.join(', ')
  if (allowHeaders !== '') headers['Access-Control-Allow-Headers'] = allowHeaders
  if (privateNetwork) headers['Access-Control-Allow-Private-Network'] = 'true'
  return headers
}

/** `Access-Control-Request-Headers`: lower-case names, comma-separated (Fetch §4.8 step 4). */
function requestedHeaders(value: string | undefined): string[] {
  if (value === undefined) return []
  const names: string[] = []
  for (const part of value.split(',')) {
    const name = part.trim().toLowerCase()
    if (name === '') continue
    if (!TOKEN.test(name) || name.length > 100) throw new CorsRefusedError('malformed Access-Control-Request-Headers')
    names.push(name)
  }
  return names
}
