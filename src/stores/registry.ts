import type { Config } from '../config/schema.ts'
import { createAzureStore } from './azure.ts'
import { createFsStore } from './fs.ts'
import { createS3Store } from './s3.ts'
import type { Store } from './types.ts'

/** One store per configured bucket id, created once at start-up. */
export function createStores(config: Config): Map<string, Store> {
  const stores = new Map<string, Store>()
  for (const [id, store] of Object.entries(config.stores)) {
    switch (store.type) {
      case 'fs':
        stores.set(id, createFsStore({ id, root: store.root }))
        break
      case 's3':
        stores.set(
          id,
          createS3Store({
            id,
            bucket: store.bucket,
            region: store.region,
            accessKey: store.access_key,
            secretKey: store.secret_key,
            endpoint: store.endpoint,
            allowHttp: store.allow_http,
          }),
        )
        break
      case 'azure':
        stores.set(id, createAzureStore({ id, container: store.container, connectionString: store.connection_string }))
        break
    }
  }
  return stores
}
