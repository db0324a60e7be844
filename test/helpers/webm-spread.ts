/**
 * Makes a large, still valid WebM out of the small committed one, so a browser seeking in it
 * must ask for a new byte range: Chromium keeps reading one response rather than open
 * another when the seek target is less than some megabytes ahead, and the fixture is 140 KB.
 *
 * A Void element (Matroska: allowed anywhere, skipped by readers) follows every Cluster,
 * and every position that points past one (`CueClusterPosition` in Cues, `SeekPosition` in
 * SeekHead) is moved by what was inserted before it. The re-encoded elements use 8-byte
 * sizes and values, so their length does not depend on the positions they hold.
 */

export const ID = { segment: 0x18538067, cluster: 0x1f43b675, cues: 0x1c53bb6b, cuePoint: 0xbb, cueTrackPositions: 0xb7, cueClusterPosition: 0xf1, seekHead: 0x114d9b74, seek: 0x4dbb, seekPosition: 0x53ac, void: 0xec }
/** Masters whose children are rewritten (they hold positions); every other element is copied as is. */
const REWRITTEN = new Set([ID.cues, ID.cuePoint, ID.cueTrackPositions, ID.seekHead, ID.seek])
const POSITIONS = new Set([ID.cueClusterPosition, ID.seekPosition])

interface Element {
  id: number
  idBytes: Buffer
  start: number
  dataStart: number
  end: number
}

function vintLength(first: number): number {
  for (let length = 1; length <= 8; length++) if (first & (0x100 >> length)) return length
  throw new Error('bad EBML vint')
}

export function readElement(bytes: Buffer, start: number, limit: number): Element {
  const idLength = vintLength(bytes[start]!)
  const sizeAt = start + idLength
  const sizeLength = vintLength(bytes[sizeAt]!)
  let size = bytes[sizeAt]! & (0xff >> sizeLength)
  let unknown = size === 0xff >> sizeLength
  for (let i = 1; i < sizeLength; i++) {
    size = size * 256 + bytes[sizeAt + i]!
    unknown &&= bytes[sizeAt + i] === 0xff
  }
  const dataStart = sizeAt + sizeLength
  return { id: bytes.readUIntBE(start, idLength), idBytes: bytes.subarray(start, start + idLength), start, dataStart, end: unknown ? limit : dataStart + size }
}

export function children(bytes: Buffer, start: number, end: number): Element[] {
  const out: Element[] = []
  for (let at = start; at < end; ) {
    const element = readElement(bytes, at, end)
    out.push(element)
    at = element.end
  }
  return out
}

/** An unsigned EBML value of any length up to 8 bytes (exact below 2^53). */
export function readUint(bytes: Buffer, start: number, end: number): number {
  let value = 0
  for (let i = start; i < end; i++) value = value * 256 + bytes[i]!
  return value
}

/** An 8-byte EBML size (or unsigned value with a marker): 0x01 then 7 bytes. */
function size8(value: number): Buffer {
  const out = Buffer.alloc(8)
  out[0] = 0x01
  out.writeUIntBE(value, 2, 6)
  return out
}

function uint8(value: number): Buffer {
  const out = Buffer.alloc(8)
  out.writeUIntBE(value, 2, 6)
  return out
}

/** `element` with its positions mapped by `move`; masters that hold them re-encoded with 8-byte sizes. */
function rewrite(bytes: Buffer, element: Element, move: (position: number) => number): Buffer {
  if (POSITIONS.has(element.id)) return Buffer.concat([element.idBytes, size8(8), uint8(move(readUint(bytes, element.dataStart, element.end)))])
  if (!REWRITTEN.has(element.id)) return bytes.subarray(element.start, element.end)
  const body = Buffer.concat(children(bytes, element.dataStart, element.end).map((child) => rewrite(bytes, child, move)))
  return Buffer.concat([element.idBytes, size8(body.length), body])
}

/** The WebM with `gap` bytes of Void after each Cluster. */
export function spreadClusters(webm: Buffer, gap: number): Buffer {
  const [header, segment] = children(webm, 0, webm.length)
  if (!header || segment?.id !== ID.segment) throw new Error('not a WebM file')
  const parts = children(webm, segment.dataStart, segment.end)
  const voidElement = Buffer.concat([Buffer.from([ID.void]), size8(gap - 9), Buffer.alloc(gap - 9)])
  // Lengths do not depend on positions: lay out once to learn where each part lands, then for real.
  const moved = new Map<number, number>()
  let at = 0
  for (const part of parts) {
    moved.set(part.start - segment.dataStart, at)
    at += rewrite(webm, part, (p) => p).length + (part.id === ID.cluster ? gap : 0)
  }
  const move = (position: number) => {
    const to = moved.get(position)
    if (to === undefined) throw new Error(`position ${position} names no top-level element`)
    return to
  }
  const body = Buffer.concat(parts.flatMap((part) => (part.id === ID.cluster ? [rewrite(webm, part, move), voidElement] : [rewrite(webm, part, move)])))
  return Buffer.concat([webm.subarray(0, segment.start), segment.idBytes, size8(body.length), body])
}
