/**
 * A gateway for test/sentry.test.ts, run in its own process (`@sentry/node` init is
 * process-global). Its one store, `local`, throws a plain TypeError (a bug: 500, reported)
 * for `boom.txt` and an UpstreamError (a domain error: 502, not reported) for
 * `upstream.txt`. Config (JSON) from CACHEGATE_SENTRY_TEST_CONFIG; prints the URL; SIGTERM
 * closes it (which flushes Sentry).
 */
import { validateConfig } from '../../src/config/load.ts'
import { UpstreamError } from '../../src/errors.ts'
import { createLogger } from '../../src/log.ts'
import { startServer } from '../../src/server.ts'
import { createFsStore } from '../../src/stores/fs.ts'
import type { Store } from '../../src/stores/types.ts'

const raw = JSON.parse(process.env.CACHEGATE_SENTRY_TEST_CONFIG ?? '{}') as { stores: { local: { root: string } } }
const config = validateConfig(raw)
const fs = createFsStore({ id: 'local', root: raw.stores.local.root })
const fail = (key: string): Promise<never> | undefined => {
  if (key === 'boom.txt') return Promise.reject(new TypeError('store exploded'))
  if (key === 'upstream.txt') return Promise.reject(new UpstreamError('local', 'server', 'store answered 503'))
  return undefined
}
const store: Store = {
  type: 'faulty',
  id: 'local',
  head: (key, options) => fail(key) ?? fs.head(key, options),
  get: ((key: string, options?: Parameters<Store['get']>[1]) => fail(key) ?? fs.get(key, options as never)) as Store['get'],
  put: (key, body, options) => fs.put(key, body, options),
}
const running = await startServer(config, { logger: createLogger('silent'), stores: new Map([['local', store]]) })
process.stdout.write(`listening ${running.url}\n`)
process.once('SIGTERM', () => void running.close().then(() => process.exit(0)))
