import { createReadStream, createWriteStream } from 'node:fs'
import * as fsp from 'node:fs/promises'
import { createHash, randomBytes } from 'node:crypto'
import path from 'node:path'
import { Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { InvalidPartError, NoSuchUploadError } from '../errors.ts'
import type { FsContext } from './fs-context.ts'
import { checkCompletion, checkPartNumber, exactSize, unquote } from './multipart.ts'
import type { MultipartPart, ObjectMeta, StoreAdmin } from './types.ts'

/** Upload ids we mint: 128 random bits in hex. Anything else names no upload (and no path). */
const UPLOAD_ID = /^[0-9a-f]{32}$/
/** A stored part: `<partNumber>.<md5 hex>`; the name carries its ETag. */
const PART_FILE = /^(\d+)\.([0-9a-f]{32})$/
const UPLOAD_FILE = 'upload.json'

interface Upload {
  key: string
  contentType: string
}

/**
 * Multipart uploads of the fs store. An upload is a directory
 * `.cachegate-meta/multipart/<uploadId>/` holding `upload.json` (key, content type) and one file
 * per part, `<partNumber>.<md5>`, written to a temp name first and renamed: a part is either
 * whole or absent. A part's ETag is the MD5 of its bytes (as S3's). Completing concatenates the
 * parts into a temp file that is renamed into place as `put` does; the object's ETag is then the
 * fs store's usual one (inode, size, mtime), so `head` and `get` agree with what completion
 * returned. Abort removes the directory. Uploads never completed or aborted stay on disk.
 */
export function fsMultipart(context: FsContext): Pick<StoreAdmin, 'createMultipart' | 'uploadPart' | 'completeMultipart' | 'abortMultipart' | 'listParts'> {
  const { root } = context

  async function uploadDir(uploadId: string): Promise<string> {
    if (!UPLOAD_ID.test(uploadId)) throw new NoSuchUploadError('no such multipart upload')
    return root.multipartDir(await root.resolved(), uploadId)
  }

  /** The upload's directory and record; NoSuchUpload when it is gone or belongs to another key. */
  async function open(key: string, uploadId: string): Promise<{ dir: string; upload: Upload }> {
    await root.locate(key)
    const dir = await uploadDir(uploadId)
    let upload: Upload
    try {
      upload = JSON.parse(await fsp.readFile(path.join(dir, UPLOAD_FILE), 'utf8')) as Upload
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new NoSuchUploadError('no such multipart upload')
      throw error
    }
    if (upload.key !== key) throw new NoSuchUploadError('no such multipart upload for this key')
    return { dir, upload }
  }

  /** The parts on disk, by part number (the newest file when a part was uploaded twice at once). */
  async function partsIn(dir: string): Promise<Map<number, MultipartPart & { file: string }>> {
    const parts = new Map<number, MultipartPart & { file: string; mtimeMs: number }>()
    for (const name of await fsp.readdir(dir)) {
      const match = PART_FILE.exec(name)
      if (!match) continue
      const file = path.join(dir, name)
      const stat = await fsp.stat(file).catch(() => null)
      if (stat === null) continue
      const partNumber = Number(match[1])
      const known = parts.get(partNumber)
      if (known && known.mtimeMs >= stat.mtimeMs) continue
      parts.set(partNumber, { partNumber, etag: `"${match[2]}"`, size: stat.size, lastModified: stat.mtime, file, mtimeMs: stat.mtimeMs })
    }
    return parts
  }

  async function createMultipart(key: string, options: { contentType: string; signal?: AbortSignal }): Promise<string> {
    await root.locate(key)
    try {
      const uploadId = randomBytes(16).toString('hex')
      const dir = await uploadDir(uploadId)
      await fsp.mkdir(dir, { recursive: true })
      await fsp.writeFile(path.join(dir, UPLOAD_FILE), JSON.stringify({ key, contentType: options.contentType } satisfies Upload))
      return uploadId
    } catch (error) {
      context.fail('create multipart', key, error)
    }
  }

  async function uploadPart(key: string, uploadId: string, partNumber: number, body: Readable, options: { size?: number; signal?: AbortSignal }): Promise<MultipartPart> {
    checkPartNumber(partNumber)
    let tmp: string | undefined
    try {
      const { dir } = await open(key, uploadId)
      tmp = path.join(dir, `${randomBytes(8).toString('hex')}.tmp`)
      const md5 = createHash('md5')
      let size = 0
      const hashed = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          md5.update(chunk)
          size += chunk.length
          callback(null, chunk)
        },
      })
      const sized = options.size === undefined ? [] : [exactSize(options.size)]
      await pipeline([body, ...sized, hashed, createWriteStream(tmp, { flags: 'wx', flush: true })], { signal: options.signal })
      const digest = md5.digest('hex')
      const name = `${partNumber}.${digest}`
      await fsp.rename(tmp, path.join(dir, name))
      tmp = undefined
      // Uploading a part number again replaces the part (S3).
      for (const other of await fsp.readdir(dir)) {
        if (other !== name && other.startsWith(`${partNumber}.`) && PART_FILE.test(other)) await fsp.unlink(path.join(dir, other)).catch(() => {})
      }
      return { partNumber, etag: `"${digest}"`, size, lastModified: new Date() }
    } catch (error) {
      if (tmp !== undefined) await fsp.unlink(tmp).catch(() => {})
      // Aborted (its directory removed) while the part was being written.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new NoSuchUploadError('no such multipart upload')
      context.fail('upload part', key, error)
    }
  }

  async function listParts(key: string, uploadId: string): Promise<MultipartPart[]> {
    try {
      const { dir } = await open(key, uploadId)
      return [...(await partsIn(dir)).values()]
        .sort((a, b) => a.partNumber - b.partNumber)
        .map(({ partNumber, etag, size, lastModified }) => ({ partNumber, etag, size, lastModified }))
    } catch (error) {
      context.fail('list parts', key, error)
    }
  }

  async function completeMultipart(key: string, uploadId: string, parts: readonly MultipartPart[], options: { signal?: AbortSignal } = {}): Promise<ObjectMeta> {
    checkCompletion(parts)
    let tmp: string | undefined
    try {
      const { dir, upload } = await open(key, uploadId)
      const stored = await partsIn(dir)
      // Every part checked before a byte is written: a bad list leaves no object.
      const files = parts.map((part) => {
        const have = stored.get(part.partNumber)
        if (have === undefined) throw new InvalidPartError(`part ${part.partNumber} was not uploaded`)
        if (unquote(have.etag) !== unquote(part.etag)) throw new InvalidPartError(`part ${part.partNumber} has another ETag`)
        return have.file
      })
      tmp = await context.tmpFile()
      const concatenated = Readable.from(
        (async function* concatenate() {
          for (const file of files) yield* createReadStream(file)
        })(),
      )
      await pipeline(concatenated, createWriteStream(tmp, { flags: 'wx', flush: true }), { signal: options.signal })
      const meta = await context.install(key, tmp, upload.contentType)
      tmp = undefined
      await fsp.rm(dir, { recursive: true, force: true })
      return meta
    } catch (error) {
      if (tmp !== undefined) await fsp.unlink(tmp).catch(() => {})
      context.fail('complete multipart', key, error)
    }
  }

  async function abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      const { dir } = await open(key, uploadId)
      await fsp.rm(dir, { recursive: true, force: true })
    } catch (error) {
      context.fail('abort multipart', key, error)
    }
  }

  return { createMultipart, uploadPart, completeMultipart, abortMultipart, listParts }
}
