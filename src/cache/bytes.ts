/**
 * An object's bytes held in memory: one Buffer, or the chunks as they arrived from the store.
 *
 * Large bodies keep their chunks: joining them means copying into one fresh allocation, and on
 * these VMs first-touch page faults make that cost 0.5–2.5 ms per MiB, all of it blocking the
 * event loop (a 64 MiB fill stalled every other request for 100 ms or more). Small bodies are
 * joined: a hit is then one write, and the copy is cheap.
 */
export type Bytes = Buffer | readonly Buffer[]

/** Bodies up to this size are joined into one Buffer; larger ones keep their chunks. */
export const JOIN_UP_TO = 1024 * 1024

export function byteLength(bytes: Bytes): number {
  if (Buffer.isBuffer(bytes)) return bytes.byteLength
  let total = 0
  for (const chunk of bytes) total += chunk.byteLength
  return total
}

/** `chunks` (which hold `total` bytes) as they should be kept: joined when small, else as they are. */
export function keep(chunks: Buffer[], total: number): Bytes {
  if (chunks.length === 1) return chunks[0]!
  return total <= JOIN_UP_TO ? Buffer.concat(chunks, total) : chunks
}

/** One Buffer (copies a chunk list): for small bodies parsed whole, such as metadata records. */
export function toBuffer(bytes: Bytes): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.concat(bytes)
}

/** Bytes `start..end` (inclusive), sharing memory with `bytes`. */
export function sliceBytes(bytes: Bytes, start: number, end: number): Bytes {
  if (Buffer.isBuffer(bytes)) return bytes.subarray(start, end + 1)
  const out: Buffer[] = []
  let offset = 0
  for (const chunk of bytes) {
    const next = offset + chunk.byteLength
    if (next > start && offset <= end) {
      const from = Math.max(start - offset, 0)
      const to = Math.min(end + 1 - offset, chunk.byteLength)
      if (to > from) out.push(from === 0 && to === chunk.byteLength ? chunk : chunk.subarray(from, to))
    }
    if (next > end) break
    offset = next
  }
  return out.length === 1 ? out[0]! : out
}

/** The chunks of `bytes`, for writing them out one after another. */
export function chunksOf(bytes: Bytes): readonly Buffer[] {
  return Buffer.isBuffer(bytes) ? [bytes] : bytes
}
