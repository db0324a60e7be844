/**
 * Real emulators for loopback tests: s3rver (S3) and Azurite (Azure Blob), each on
 * 127.0.0.1 with an OS-assigned port and its own temporary directory.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { realpathSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'
import { BlobServiceClient } from '@azure/storage-blob'

/** Azurite's fixed development account (documented, public). */
export const AZURITE_ACCOUNT = 'devstoreaccount1'
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
/** s3rver accepts only its built-in account. */
export const S3RVER_ACCESS_KEY = 'S3RVER'
export const S3RVER_SECRET_KEY = 'S3RVER'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/** The slice of s3rver's API we use (the package ships no type declarations). */
interface S3rverInstance {
  run(): Promise<AddressInfo>
  close(): Promise<void>
  httpServer?: Server
  logger?: { silent: boolean }
}
type S3rverOptions = { address: string; port: number; silent: boolean; directory: string; configureBuckets: { name: string }[] }
const S3rver = createRequire(import.meta.url)('s3rver') as new (options: S3rverOptions) => S3rverInstance

export interface S3rverHandle {
  endpoint: string
  bucket: string
  accessKey: string
  secretKey: string
  close(): Promise<void>
}

/**
 * @example
 * const s3 = await startS3rver()
 * const store = createS3Store({ id: 's3', bucket: s3.bucket, endpoint: s3.endpoint, allowHttp: true, accessKey: s3.accessKey, secretKey: s3.secretKey })
 * await s3.close()
 */
export async function startS3rver(): Promise<S3rverHandle> {
  const directory = await mkdtemp(path.join(tmpdir(), 'cachegate-s3rver-'))
  // Bucket names: 3–63 characters, lower case.
  const bucket = `test-bucket-${process.pid}`
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] })
  try {
    const address = await server.run()
    return {
      endpoint: `http://127.0.0.1:${address.port}`,
      bucket,
      accessKey: S3RVER_ACCESS_KEY,
      secretKey: S3RVER_SECRET_KEY,
      async close() {
        // Keep-alive sockets from SDK clients would otherwise hold close() open.
        // s3rver logs responses cut by the close after it has removed its log transport, and
        // winston then warns "Attempt to write logs with no transports": mute it first.
        if (server.logger) server.logger.silent = true
        server.httpServer?.closeAllConnections()
        await server.close().catch(() => {})
        await rm(directory, { recursive: true, force: true })
      },
    }
  } catch (error) {
    await rm(directory, { recursive: true, force: true })
    throw error
  }
}

export interface AzuriteHandle {
  connectionString: string
  container: string
  close(): Promise<void>
}

/** Connection string for Azurite's blob service on `port` (same shape as the Azure portal's). */
export function azuriteConnectionString(port: number): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=http://127.0.0.1:${port}/${AZURITE_ACCOUNT};`
}

/**
 * Spawns `azurite-blob` with the Node running this process (the bin's `#!/usr/bin/env node`
 * could pick up an older system Node), waits for its "listens on" line and creates a container.
 */
export async function startAzurite(): Promise<AzuriteHandle> {
  const location = await mkdtemp(path.join(tmpdir(), 'cachegate-azurite-'))
  const script = realpathSync(path.join(ROOT, 'node_modules/.bin/azurite-blob'))
  const child = spawn(
    process.execPath,
    [script, '--blobPort', '0', '--blobHost', '127.0.0.1', '--location', location, '--skipApiVersionCheck', '--loose', '--disableTelemetry'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  // Never leave an emulator behind, even if a test forgets close() or the runner exits early.
  const killOnExit = () => child.kill('SIGKILL')
  process.once('exit', killOnExit)
  const exited = once(child, 'exit')

  async function close(): Promise<void> {
    process.removeListener('exit', killOnExit)
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    await rm(location, { recursive: true, force: true })
  }

  try {
    const port = await new Promise<number>((resolve, reject) => {
      let output = ''
      const timer = setTimeout(() => reject(new Error(`azurite did not start within 20 s:\n${output}`)), 20_000)
      const onData = (chunk: Buffer) => {
        output += chunk.toString()
        const match = /listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
        if (match?.[1] !== undefined) {
          clearTimeout(timer)
          child.stdout.off('data', onData)
          // Keep draining so a chatty emulator never blocks on a full pipe.
          child.stdout.resume()
          resolve(Number(match[1]))
        }
      }
      child.stdout.on('data', onData)
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()))
      child.once('exit', (code, signal) => {
        clearTimeout(timer)
        reject(new Error(`azurite exited early (${code ?? signal}):\n${output}`))
      })
      child.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
    })
    const connectionString = azuriteConnectionString(port)
    const container = `test-container-${process.pid}`
    await BlobServiceClient.fromConnectionString(connectionString).getContainerClient(container).create()
    return { connectionString, container, close }
  } catch (error) {
    await close()
    throw error
  }
}
