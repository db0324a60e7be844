/**
 * CORS configuration (issue 11 §1): `cors:` and `stores.<id>.cors:` parsing, origin rules and
 * patterns, inheritance and defaults, and preflight decisions on a policy, without a server.
 */
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, it } from 'node:test'
import { generateKeyPair } from '../src/auth/keys.ts'
import { configFromFlatEnv, ConfigError, validateConfig } from '../src/config/load.ts'
import { CorsRefusedError } from '../src/errors.ts'
import { preflightHeaders } from '../src/http/cors/hooks.ts'
import { OriginMatcher, parseOriginRule } from '../src/http/cors/origins.ts'
import { CORS_DEFAULTS, createCorsPolicy, resolveCorsPolicies } from '../src/http/cors/policy.ts'
import { cleanEnv, runCli, tempDir } from './helpers/gateway.ts'

const keys = generateKeyPair()
const base = { auth: { public_key: keys.public_key }, stores: { local: { type: 'fs', root: '/tmp' } } }
const problems = (raw: Record<string, unknown>): string[] => {
  try {
    validateConfig({ ...base, ...raw })
  } catch (error) {
    assert.ok(error instanceof ConfigError)
    return error.problems
  }
  assert.fail('config was accepted')
}

describe('allowed_origins entries', () => {
  const accepted = ['*', 'https://app.example.com', 'http://127.0.0.1:5173', 'https://[::1]:8443', 'https://*.example.com', 'https://*.example.com:8443', 'http://*.dev.example.org']
  for (const entry of accepted) {
    it(`accepts ${entry}`, () => {
      assert.doesNotThrow(() => parseOriginRule(entry))
      assert.doesNotThrow(() => validateConfig({ ...base, cors: { allowed_origins: [entry] } }))
    })
  }

  const refused: [string, RegExp][] = [
    ['https://*example.com', /leading labels/],
    ['*.example.com', /leading labels/],
    ['https://a.*.example.com', /leading labels/],
    ['https://*.*.example.com', /leading labels/],
    ['https://*', /leading labels/],
    ['https://*.com', /top-level domain/],
    ['https://App.example.com', /as browsers send it/],
    ['https://app.example.com/', /as browsers send it/],
    ['https://app.example.com/path', /as browsers send it/],
    ['https://app.example.com:443', /as browsers send it/],
    ['https://*.Example.com', /as browsers send it/],
    ['ftp://files.example.com', /http or https/],
    ['app.example.com', /not an origin/],
    ['null', /"null" cannot be allowed/],
  ]
  for (const [entry, message] of refused) {
    it(`refuses ${entry} at start-up, without quoting it`, () => {
      const found = problems({ cors: { allowed_origins: ['https://ok.example.com', entry] } })
      assert.equal(found.length, 1, found.join('\n'))
      assert.match(found[0]!, /^cors\.allowed_origins\.1: /)
      assert.match(found[0]!, message)
      if (entry !== 'null') assert.ok(!found[0]!.includes(`"${entry}"`), found[0])
    })
  }

  it('refuses a bad pattern in a store’s section too', () => {
    const found = problems({ stores: { local: { type: 'fs', root: '/tmp', cors: { allowed_origins: ['https://*example.com'] } } } })
    assert.match(found.join('\n'), /^stores\.local\.cors\.allowed_origins\.0: not a valid pattern/)
  })

  it('a bad pattern stops the CLI before it listens', async () => {
    const dir = await tempDir()
    const file = path.join(dir, 'config.yaml')
    await writeFile(file, `listen: 127.0.0.1:0\nauth: { public_key: ${keys.public_key} }\nstores: { local: { type: fs, root: ${dir} } }\ncors: { allowed_origins: ['https://*example.com'] }\n`)
    const result = await runCli(['--config', file], { env: cleanEnv(), timeoutMs: 15_000 })
    assert.equal(result.code, 1)
    assert.match(result.stderr, /cors\.allowed_origins\.0: not a valid pattern/)
  })

  const matches: [string, string, boolean][] = [
    ['https://*.example.com', 'https://a.example.com', true],
    ['https://*.example.com', 'https://a.b-c.example.com', true],
    ['https://*.example.com', 'https://example.com', false],
    ['https://*.example.com', 'https://.example.com', false],
    ['https://*.example.com', 'https://a..example.com', false],
    ['https://*.example.com', 'https://evilexample.com', false],
    ['https://*.example.com', 'https://a.example.com.evil.net', false],
    ['https://*.example.com', 'http://a.example.com', false],
    ['https://*.example.com', 'https://a.example.com:8443', false],
    ['https://*.example.com', 'https://a_b.example.com', false],
    ['https://*.example.com', 'https://a.example.com/', false],
    ['https://*.example.com:8443', 'https://a.example.com:8443', true],
    ['https://*.example.com:8443', 'https://a.example.com', false],
    ['https://app.example.com', 'https://app.example.com', true],
    ['https://app.example.com', 'https://app.example.com:443', false],
    ['https://app.example.com', 'https://APP.example.com', false],
    ['*', 'null', true],
  ]
  for (const [rule, origin, expected] of matches) {
    it(`${rule} ${expected ? 'matches' : 'does not match'} ${origin}`, () => {
      assert.equal(new OriginMatcher([parseOriginRule(rule)]).allows(origin), expected)
    })
  }
})

describe('cors keys', () => {
  it('methods are upper-cased and limited to the object methods; header names are tokens', () => {
    const config = validateConfig({ ...base, cors: { allowed_origins: ['*'], allowed_methods: ['get', 'put'], allowed_headers: ['X-Custom'] } })
    assert.deepEqual(config.cors?.allowed_methods, ['GET', 'PUT'])
    assert.deepEqual(config.cors?.allowed_headers, ['x-custom'])
    assert.match(problems({ cors: { allowed_methods: ['DELETE'] } }).join('\n'), /cors\.allowed_methods\.0: must be one of GET, HEAD, PUT/)
    assert.match(problems({ cors: { allowed_headers: ['x y'] } }).join('\n'), /cors\.allowed_headers\.0: not a header name/)
    assert.match(problems({ cors: { expose_headers: ['a:b'] } }).join('\n'), /cors\.expose_headers\.0: not a header name/)
    assert.match(problems({ cors: { max_age_seconds: -1 } }).join('\n'), /cors\.max_age_seconds/)
    assert.match(problems({ cors: { allowed_origin: ['*'] } }).join('\n'), /cors: unknown key "allowed_origin"/)
  })

  it('flat environment variables give lists', () => {
    const flat = configFromFlatEnv({ CACHEGATE__CORS__ALLOWED_ORIGINS: 'https://a.example.com, https://*.example.org', CACHEGATE__CORS__ALLOW_CREDENTIALS: 'true' })
    const config = validateConfig({ ...base, ...flat })
    assert.deepEqual(config.cors?.allowed_origins, ['https://a.example.com', 'https://*.example.org'])
    assert.equal(config.cors?.allow_credentials, true)
  })

  it('no section anywhere: no policies (no CORS headers)', () => {
    assert.equal(resolveCorsPolicies(validateConfig(base)), undefined)
  })

  it('defaults, and a store’s section inherits the keys it leaves out from the top level', () => {
    const config = validateConfig({
      ...base,
      cors: { allowed_origins: ['https://app.example.com'], max_age_seconds: 120 },
      stores: { local: { type: 'fs', root: '/tmp' }, media: { type: 'fs', root: '/tmp', cors: { allowed_origins: ['*'], expose_headers: ['ETag'] } } },
    })
    const policies = resolveCorsPolicies(config)!
    const local = policies.byStore.get('local')!
    const media = policies.byStore.get('media')!
    assert.equal(local, policies.fallback)
    assert.equal(local.maxAge, '120')
    assert.equal(local.allowMethods, 'GET, HEAD, PUT')
    assert.equal(local.allowHeaders, CORS_DEFAULTS.allowed_headers.join(', '))
    assert.equal(local.exposeHeaders, CORS_DEFAULTS.expose_headers.join(', '))
    assert.equal(local.varies, true)
    assert.equal(media.maxAge, '120')
    assert.equal(media.exposeHeaders, 'etag')
    assert.equal(media.varies, false)
    assert.equal(createCorsPolicy({}).maxAge, '600')
    assert.equal(createCorsPolicy({}).origins.allows('https://app.example.com'), false)
  })

  it('a store section alone leaves other stores and unknown buckets without CORS', () => {
    const config = validateConfig({ ...base, stores: { local: { type: 'fs', root: '/tmp' }, media: { type: 'fs', root: '/tmp', cors: { allowed_origins: ['*'] } } } })
    const policies = resolveCorsPolicies(config)!
    assert.equal(policies.fallback, undefined)
    assert.equal(policies.byStore.get('local'), undefined)
    assert.ok(policies.byStore.get('media'))
  })
})

describe('preflight decisions', () => {
  const policy = createCorsPolicy({ allowed_origins: ['https://app.example.com'] })
  const preflight = (headers: Record<string, string>) => preflightHeaders(policy, { origin: 'https://app.example.com', 'access-control-request-method': 'PUT', ...headers })
  const refused = (headers: Record<string, string>, message: RegExp) => assert.throws(() => preflight(headers), (error) => error instanceof CorsRefusedError && message.test(error.message))

  it('allows the default headers, in any case and spacing', () => {
    const headers = preflight({ 'access-control-request-headers': 'Content-Type,authorization ,  RANGE,if-match' })
    assert.equal(headers['Access-Control-Allow-Origin'], 'https://app.example.com')
    assert.equal(headers['Access-Control-Allow-Methods'], 'GET, HEAD, PUT')
    assert.equal(headers['Access-Control-Max-Age'], '600')
    assert.equal(headers.Vary, 'Origin')
    assert.equal(headers['Access-Control-Allow-Credentials'], undefined)
  })
  it('refuses another origin, method or header', () => {
    refused({ origin: 'https://evil.example.com' }, /origin not allowed/)
    refused({ 'access-control-request-method': 'DELETE' }, /method not allowed/)
    refused({ 'access-control-request-method': 'put' }, /method not allowed/)
    refused({ 'access-control-request-headers': 'content-type, x-secret' }, /request header "x-secret" not allowed/)
    refused({ 'access-control-request-headers': 'bad header' }, /malformed/)
    refused({ 'access-control-request-private-network': 'true' }, /private network/)
    assert.throws(() => preflightHeaders(policy, { origin: 'https://app.example.com' }), /not a CORS preflight/)
  })
  it('`*` in allowed_headers echoes what was asked, authorization included', () => {
    const any = createCorsPolicy({ allowed_origins: ['*'], allowed_headers: ['*'] })
    const headers = preflightHeaders(any, { origin: 'https://x.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'X-One, authorization' })
    assert.equal(headers['Access-Control-Allow-Headers'], 'x-one, authorization')
    assert.equal(headers['Access-Control-Allow-Origin'], '*')
    assert.equal(headers.Vary, undefined)
  })
  it('credentials: the origin is echoed even for `*`, never `null`', () => {
    const creds = createCorsPolicy({ allowed_origins: ['*'], allow_credentials: true })
    const headers = preflightHeaders(creds, { origin: 'https://x.example', 'access-control-request-method': 'GET' })
    assert.equal(headers['Access-Control-Allow-Origin'], 'https://x.example')
    assert.equal(headers['Access-Control-Allow-Credentials'], 'true')
    assert.equal(headers.Vary, 'Origin')
    assert.throws(() => preflightHeaders(creds, { origin: 'null', 'access-control-request-method': 'GET' }), /origin not allowed/)
  })
  it('private network access when allowed and asked for', () => {
    const pna = createCorsPolicy({ allowed_origins: ['https://app.example.com'], allow_private_network: true })
    const asked = preflightHeaders(pna, { origin: 'https://app.example.com', 'access-control-request-method': 'GET', 'access-control-request-private-network': 'true' })
    assert.equal(asked['Access-Control-Allow-Private-Network'], 'true')
    const notAsked = preflightHeaders(pna, { origin: 'https://app.example.com', 'access-control-request-method': 'GET' })
    assert.equal(notAsked['Access-Control-Allow-Private-Network'], undefined)
  })
})
