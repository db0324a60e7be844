import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '../src/auth/keys.ts'
import { validateConfig } from '../src/config/load.ts'
import { createStores, decorateStores } from '../src/stores/registry.ts'
import { Telemetry } from '../src/metrics.ts'

describe('store registry', () => {
  it('builds one store per configured bucket id, of each type (SDKs loaded on demand)', async () => {
    const config = validateConfig({
      auth: { public_key: generateKeyPair().public_key },
      stores: {
        files: { type: 'fs', root: '/tmp/cachegate-registry-test' },
        media: { type: 's3', bucket: 'media-bucket', endpoint: 'http://127.0.0.1:9', allow_http: true, access_key: 'a', secret_key: 'b' },
        assets: { type: 'azure', container: 'assets', connection_string: 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;' },
      },
    })
    const stores = await createStores(config)
    assert.deepEqual(
      [...stores].map(([id, store]) => [id, store.type, store.id]),
      [
        ['files', 'fs', 'files'],
        ['media', 's3', 'media'],
        ['assets', 'azure', 'assets'],
      ],
    )
    await Promise.all([...stores.values()].map((s) => s.close?.()))
  })

  it('decorates every store once, keeping its id, type and close', async () => {
    let closed = 0
    const raw = new Map([['t', { type: 'in-memory-test', id: 't', head: async () => null, get: async () => null, put: async () => ({ size: 0, contentType: 'x' }), close: async () => void closed++ }]])
    const decorated = decorateStores(raw, { timeoutMs: 1000, telemetry: new Telemetry() })
    const store = decorated.get('t')
    assert.ok(store && store !== raw.get('t'))
    assert.deepEqual([store.type, store.id], ['in-memory-test', 't'])
    await store.close?.()
    assert.equal(closed, 1)
  })
})
