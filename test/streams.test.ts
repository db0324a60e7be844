/**
 * Streams that exist before anyone reads them (issue 16, item 1 and its audit): an error in
 * that window must be held for the consumer, never become an unhandled 'error' event.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { PassThrough, Readable, Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { createFsStore } from '../src/stores/fs.ts'
import { link } from '../src/streams.ts'
import { tempDir } from './helpers/gateway.ts'

/** Fails the test if anything reaches 'uncaughtException' while `fn` and a few ticks run. */
async function noUncaught(fn: () => Promise<void>): Promise<void> {
  const seen: unknown[] = []
  const listeners = process.rawListeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  const onUncaught = (error: unknown) => seen.push(error)
  process.on('uncaughtException', onUncaught)
  try {
    await fn()
    await sleep(20)
  } finally {
    process.off('uncaughtException', onUncaught)
    for (const listener of listeners) process.on('uncaughtException', listener as (error: Error) => void)
  }
  assert.deepEqual(seen, [])
}

describe('link', () => {
  it('a source that fails before the sink has a consumer: held on the sink, seen by the consumer later', async () => {
    await noUncaught(async () => {
      const source = new PassThrough()
      const sink = link(source, new PassThrough())
      source.destroy(new Error('ECONNRESET'))
      await sleep(5)
      assert.equal(sink.destroyed, true)
      await assert.rejects(pipeline(sink, new PassThrough().resume()), /ECONNRESET/)
    })
  })

  it('a source that closes before its end fails the sink with the premature-close error', async () => {
    await noUncaught(async () => {
      const source = new PassThrough()
      const sink = link(source, new PassThrough(), { prematureClose: () => new Error('client left') })
      source.write('abc')
      source.destroy()
      await sleep(5)
      await assert.rejects(pipeline(sink, new PassThrough().resume()), /client left/)
    })
  })

  it("the sink's own error (a limit) with no consumer yet does not stop the process; the source is paused, not destroyed", async () => {
    await noUncaught(async () => {
      const source = new PassThrough()
      const limit = new Transform({ transform: (_chunk, _enc, callback) => callback(new Error('too large')) })
      const sink = link(source, limit)
      source.write('x')
      // events.once would reject on the 'error' event itself: wait for 'close' alone.
      await new Promise((resolve) => sink.once('close', resolve))
      assert.equal(source.destroyed, false)
      assert.equal(source.isPaused(), true)
      assert.match(String(sink.errored), /too large/)
    })
  })

  it('destroySource: a sink closed early destroys its source', async () => {
    const source = new PassThrough()
    const sink = link(source, new PassThrough(), { destroySource: true })
    sink.destroy()
    await once(source, 'close')
    assert.equal(source.destroyed, true)
  })

  it('passes every byte through when nothing fails', async () => {
    const sink = link(Readable.from([Buffer.from('ab'), Buffer.from('cd')]), new PassThrough())
    assert.equal(Buffer.concat(await sink.toArray()).toString(), 'abcd')
  })
})

describe('store bodies handed back before they are read', () => {
  // Audited: store bodies are handed back before they are read; fs and the SDKs' bodies hold
  // an abort until read (Node's IncomingMessage emits 'error' only to listeners). Keep it so.
  it('fs: a GET whose signal aborts before anyone reads the body stops nothing', async () => {
    const root = await tempDir()
    await writeFile(path.join(root, 'a.bin'), Buffer.alloc(1024))
    const store = createFsStore({ id: 'fs', root })
    await noUncaught(async () => {
      const abort = new AbortController()
      const got = await store.get('a.bin', { signal: abort.signal })
      assert.ok(got)
      abort.abort()
      await sleep(5)
      await assert.rejects(got.body.toArray(), /abort/i)
    })
  })
})
