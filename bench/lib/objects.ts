/**
 * Benchmark objects: random bytes written once to local files (served by the raw servers)
 * and uploaded to s3rver (read by the gateway and nginx), so every server sends the same bytes.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { Readable } from 'node:stream'
import { CopyObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { S3RVER_ACCESS_KEY, S3RVER_SECRET_KEY } from '../../test/helpers/emulators.ts'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

export function s3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_ACCESS_KEY, secretAccessKey: S3RVER_SECRET_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

/** Writes `size` random bytes to `file` in 8 MiB slices (never the whole object in memory). */
export async function writeRandomFile(file: string, size: number): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true })
  if (size <= 16 * MiB) {
    await writeFile(file, randomBytes(size))
    return
  }
  const handle = await open(file, 'w')
  try {
    for (let written = 0; written < size; ) {
      const slice = randomBytes(Math.min(8 * MiB, size - written))
      await handle.write(slice)
      written += slice.length
    }
  } finally {
    await handle.close()
  }
}

/** Uploads a file (multipart above 16 MiB, streamed from disk). */
export async function uploadFile(client: S3Client, bucket: string, key: string, file: string, size: number): Promise<void> {
  if (size <= 16 * MiB) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(file), ContentType: 'application/octet-stream' }))
    return
  }
  await uploadStream(client, bucket, key, createReadStream(file, { highWaterMark: 8 * MiB }))
}

/** Multipart upload from any stream or async iterable: memory stays at a few 8 MiB parts. */
export async function uploadStream(client: S3Client, bucket: string, key: string, body: Readable | AsyncIterable<Uint8Array>): Promise<void> {
  const upload = new Upload({
    client,
    // lib-storage takes a Readable, not a bare async iterable.
    params: { Bucket: bucket, Key: key, Body: body instanceof Readable ? body : Readable.from(body), ContentType: 'application/octet-stream' },
    partSize: 8 * MiB,
    queueSize: 2,
  })
  await upload.done()
}

/** A server-side copy: a fresh key with the same bytes, so a GET of it is a real cold miss. */
export async function copyObject(client: S3Client, bucket: string, from: string, to: string): Promise<void> {
  await client.send(new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: `${bucket}/${from}` }))
}

/** `size` pseudo-random bytes, generated 8 MiB at a time (for 1 GiB uploads). */
export async function* randomChunks(size: number, chunk = 8 * MiB): AsyncGenerator<Buffer> {
  // One random slice reused: the content does not matter, only that it is not all zeroes.
  const slice = randomBytes(chunk)
  for (let sent = 0; sent < size; sent += chunk) yield size - sent >= chunk ? slice : slice.subarray(0, size - sent)
}
