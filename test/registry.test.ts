import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '../src/auth/keys.ts'
import { validateConfig } from '../src/config/load.ts'
import { createStores } from '../src/stores/registry.ts'

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
})
