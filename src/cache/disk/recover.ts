/**
 * Start-up recovery: lists the entry files under the root, reads and checks each header, and
 * deletes temp files (a crash mid-write) and entries that cannot be served. Bodies are not
 * hashed here (see read.ts): that would read the whole cache before the gateway listens.
 */
import type { FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { MAX_HEADER_BYTES, PREFIX_BYTES, decodeHeader, hashOfEntryName, isFanName, isTempName, metaOf, sha256, storedAtOf } from './format.ts'
import { type DiskFs, errorCode } from './fs.ts'
import type { Housekeeper } from './housekeeping.ts'
import type { Entry } from './types.ts'

const RECOVERY_CONCURRENCY = 16

/** The servable entries under `root` (created if missing), oldest first. */
export async function recoverEntries(root: string, fs: DiskFs, upkeep: Housekeeper): Promise<Entry[]> {
  await fs.mkdir(root, { recursive: true, mode: 0o700 })
  const candidates = await listEntryFiles(root, fs, upkeep)
  const loaded: Entry[] = []
  for (let i = 0; i < candidates.length; i += RECOVERY_CONCURRENCY) {
    const batch = candidates.slice(i, i + RECOVERY_CONCURRENCY)
    for (const entry of await Promise.all(batch.map(([file, hash]) => load(file, hash, fs, upkeep)))) if (entry) loaded.push(entry)
  }
  // Oldest first, so that when the bound shrank, S3-FIFO's small queue evicts the oldest; and of
  // two files for one key (a crash between rename and unlinking the old one), the newer replaces the older.
  return loaded.sort((x, y) => x.written - y.written)
}

/** Entry files as [file, key hash]; leftover temp files are deleted on the way. */
async function listEntryFiles(root: string, fs: DiskFs, upkeep: Housekeeper): Promise<[file: string, hash: string][]> {
  const candidates: [file: string, hash: string][] = []
  const list = (dir: string) =>
    fs.readdir(dir).catch((error: unknown) => {
      if (errorCode(error) !== 'ENOTDIR') upkeep.report('recover', error, { dir })
      return [] as string[]
    })
  for (const a of (await fs.readdir(root)).filter(isFanName)) {
    for (const b of (await list(path.join(root, a))).filter(isFanName)) {
      const dir = path.join(root, a, b)
      for (const name of await list(dir)) {
        const hash = hashOfEntryName(name)
        // Only names this tier writes are touched: anything else in the directory is left alone.
        if (hash?.startsWith(a + b)) candidates.push([path.join(dir, name), hash])
        else if (isTempName(name)) await upkeep.unlinkQuietly(path.join(dir, name))
      }
    }
  }
  return candidates
}

/** Reads and checks one entry file's header; undefined (and the file deleted) when it is not servable. */
async function load(file: string, hash: string, fs: DiskFs, upkeep: Housekeeper): Promise<Entry | undefined> {
  let handle: FileHandle | undefined
  let reason: string
  try {
    handle = await fs.open(file, 'r')
    const fileSize = (await handle.stat()).size
    const head = Buffer.alloc(Math.min(fileSize, PREFIX_BYTES + MAX_HEADER_BYTES))
    const { bytesRead } = await handle.read(head, 0, head.byteLength, 0)
    const decoded = decodeHeader(head.subarray(0, bytesRead))
    if (!decoded) reason = 'unreadable header'
    else if (sha256(decoded.header.key) !== hash) reason = 'file name does not match its key'
    else if (fileSize !== decoded.offset + decoded.header.size) reason = `size ${fileSize} != ${decoded.offset + decoded.header.size} (torn or truncated)`
    else {
      const { header, offset } = decoded
      return { key: header.key, file, meta: metaOf(header), offset, fileSize, sha256: header.sha256, written: header.written, storedAt: storedAtOf(header), verified: false }
    }
  } catch (error) {
    reason = `unreadable: ${errorCode(error) ?? String(error)}`
  } finally {
    await handle?.close().catch(() => {})
  }
  // Temp-then-rename never leaves such a file: it is damage (or another program's), worth a metric.
  upkeep.report('recover', new Error(`dropping ${file}: ${reason}`), { file })
  await upkeep.unlinkQuietly(file)
  return undefined
}
