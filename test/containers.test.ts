/**
 * Docker cannot run here, so the container files are checked by reading: they parse, their
 * ports agree with each other, and the gateway's environment is a valid cachegate config.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, it } from 'node:test'
import { parse as parseYaml } from 'yaml'
import { generateKeyPair } from '../src/auth/keys.ts'
import { loadConfig } from '../src/config/load.ts'

const ROOT = path.join(import.meta.dirname, '..')
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8')

interface Service {
  ports?: string[]
  command?: string
  entrypoint?: string
  environment?: Record<string, string>
}
type Compose = { services: Record<string, Service> }

/** Resolves `${VAR:?msg}`, `${VAR:-default}` and `${VAR}` the way compose does. */
function interpolate(value: string, env: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::([?-])([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => env[name] ?? (op === '-' ? (arg ?? '') : ''))
}

function gatewayConfig(service: Service) {
  const env = { CACHEGATE_PUBLIC_KEY: generateKeyPair().public_key, S3_BUCKET: 'prod-bucket' }
  const vars = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), env)]))
  return loadConfig('env', vars)
}

const dockerfile = read('Dockerfile')
const exposed = Number(/^EXPOSE (\d+)/m.exec(dockerfile)?.[1])
const healthPort = Number(/HEALTHCHECK[\s\S]*?127\.0\.0\.1:(\d+)\/health/.exec(dockerfile)?.[1])

describe('container files', () => {
  it('Dockerfile: multi-stage, Node 22 slim, non-root, --config env, health check on the exposed port', () => {
    assert.equal((dockerfile.match(/^FROM node:22-slim/gm) ?? []).length, 2)
    assert.match(dockerfile, /^USER node$/m)
    assert.match(dockerfile, /CMD \["--config", "env"\]/)
    assert.equal(healthPort, exposed)
    for (const copied of ['bin', 'src', 'package.json']) assert.match(dockerfile, new RegExp(`COPY .*${copied}`))
  })

  for (const file of ['docker-compose.yml', 'docker-compose.prod.yml']) {
    it(`${file}: parses, and the gateway's published port, listen address and image port agree`, () => {
      const compose = parseYaml(read(file)) as Compose
      const gateway = compose.services.cachegate
      assert.ok(gateway, 'a cachegate service')
      const config = gatewayConfig(gateway)
      const [published] = gateway.ports ?? []
      const containerPort = Number(String(published).split(':').at(-1))
      assert.equal(containerPort, config.listen.port)
      assert.equal(containerPort, exposed)
    })
  }

  it('docker-compose.yml: the gateway points at MinIO and Azurite on the ports they listen on, with the bucket and container created', () => {
    const compose = parseYaml(read('docker-compose.yml')) as Compose
    const { minio, azurite } = compose.services
    const minioPort = /--address :(\d+)/.exec(minio!.command!)![1]
    const blobPort = /--blobPort (\d+)/.exec(azurite!.command!)![1]
    assert.ok(minio!.ports!.includes(`${minioPort}:${minioPort}`))
    assert.ok(azurite!.ports!.includes(`${blobPort}:${blobPort}`))
    const config = gatewayConfig(compose.services.cachegate!)
    const s3 = config.stores.media
    const az = config.stores.assets
    assert.ok(s3?.type === 's3' && az?.type === 'azure')
    assert.equal(s3.endpoint, `http://minio:${minioPort}`)
    assert.match(az.connection_string, new RegExp(`BlobEndpoint=http://azurite:${blobPort}/`))
    const mcInit = compose.services['minio-init']!.entrypoint!
    assert.match(mcInit, new RegExp(`http://minio:${minioPort} `))
    assert.match(mcInit, new RegExp(`mb --ignore-existing local/${s3.bucket}`))
    const azInit = compose.services['azurite-init']!
    assert.match(azInit.entrypoint!, new RegExp(`--name ${az.container} `))
    assert.match(azInit.environment!.AZURE_CS!, new RegExp(`BlobEndpoint=http://azurite:${blobPort}/`))
  })
})
