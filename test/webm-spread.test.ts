/**
 * The test helper that spreads a WebM's Clusters apart (test/helpers/webm-spread.ts): what
 * the browser test's seeks rely on, checked without a browser (CI has no ffprobe).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { it } from 'node:test'
import { ROOT } from './helpers/gateway.ts'
import { ID, children, readUint, spreadClusters } from './helpers/webm-spread.ts'

/** Segment data start, and every top-level element of the Segment. */
function segmentOf(webm: Buffer) {
  const segment = children(webm, 0, webm.length)[1]!
  assert.equal(segment.id, ID.segment)
  return { segment, parts: children(webm, segment.dataStart, segment.end) }
}

/** Every CueClusterPosition of the Cues. */
function cuePositions(webm: Buffer, cues: { dataStart: number; end: number }): number[] {
  return children(webm, cues.dataStart, cues.end).flatMap((point) =>
    children(webm, point.dataStart, point.end)
      .filter((e) => e.id === ID.cueTrackPositions)
      .flatMap((track) => children(webm, track.dataStart, track.end).filter((e) => e.id === ID.cueClusterPosition))
      .map((e) => readUint(webm, e.dataStart, e.end)),
  )
}

it('puts a Void after every Cluster and keeps every cue pointing at a Cluster', () => {
  const original = readFileSync(path.join(ROOT, 'test/fixtures/testsrc-10s.webm'))
  const gap = 1 << 20
  const spread = spreadClusters(original, gap)
  const before = segmentOf(original)
  const after = segmentOf(spread)
  const clusters = before.parts.filter((p) => p.id === ID.cluster).length
  assert.equal(clusters, 10)
  assert.ok(spread.length - original.length - clusters * gap < 8192, `${spread.length} bytes`)
  assert.equal(after.segment.end, spread.length)
  assert.deepEqual(
    after.parts.map((p) => p.id).filter((id) => id !== ID.void),
    before.parts.map((p) => p.id).filter((id) => id !== ID.void),
  )
  const cues = after.parts.find((p) => p.id === ID.cues)!
  const positions = cuePositions(spread, cues)
  assert.equal(positions.length, cuePositions(original, before.parts.find((p) => p.id === ID.cues)!).length)
  for (const position of positions) assert.equal(spread.readUInt32BE(after.segment.dataStart + position), ID.cluster, `cue at ${position}`)
  // Each Cluster's bytes are unchanged.
  const bodies = (webm: Buffer, parts: typeof before.parts) => parts.filter((p) => p.id === ID.cluster).map((p) => webm.subarray(p.start, p.end))
  assert.deepEqual(bodies(spread, after.parts), bodies(original, before.parts))
})
