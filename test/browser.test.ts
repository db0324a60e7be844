/**
 * Browser-ready links (issue 11) in a real Chromium: a page on another origin plays a
 * presigned video and seeks, reads ETag and Content-Range with fetch(), uploads a Blob with a
 * presigned PUT, fetches with a bearer token, is blocked where its origin is not allowed, and
 * a tab opened on an expired link or a link for another file shows the error page. Version 2
 * links: a cross-origin `<a>` to a link with `fn` downloads under that (non-ASCII) name, with
 * the object's bytes, while `disp: inline` is displayed; a prefix link (`pp`) works inside its
 * prefix and, outside it, shows the 403 page in a tab and a 403 JSON body to fetch(). Every
 * link is minted by `rig.presign`. See test/helpers/browser.ts.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Page } from 'playwright-core'
import { BEARER, ROOT, rawRequest, tempDir } from './helpers/gateway.ts'
import { type BrowserRig, skipBrowser, startBrowserRig } from './helpers/browser.ts'
import { spreadClusters } from './helpers/webm-spread.ts'

const VIDEO = path.join(ROOT, 'test/fixtures/testsrc-10s.webm')
/** A 1×1 PNG. */
const PIXEL_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='

describe('in Chromium, a page on another origin', { skip: skipBrowser }, () => {
  let rig: BrowserRig
  let page: Page
  let local: string
  let video: Buffer
  let spread: Buffer
  /** Bytes no text decoding would keep intact: what a download must save as is. */
  const report = randomBytes(64 * 1024)

  before(async () => {
    local = await tempDir()
    const elsewhere = await tempDir()
    video = await readFile(VIDEO)
    await mkdir(path.join(local, 'media'))
    // 10 MiB: far enough apart that a seek is a new Range request (webm-spread.ts).
    spread = spreadClusters(video, 1 << 20)
    await writeFile(path.join(local, 'media/testsrc.webm'), spread)
    await writeFile(path.join(local, 'hello.txt'), 'hello from cachegate')
    await writeFile(path.join(local, 'media/clip.txt'), 'inside the prefix')
    await mkdir(path.join(local, 'reports'))
    await writeFile(path.join(local, 'reports/q3.bin'), report)
    await writeFile(path.join(elsewhere, 'hello.txt'), 'not for this page')
    rig = await startBrowserRig((pageOrigin) => ({
      cors: { allowed_origins: [pageOrigin] },
      stores: { local: { type: 'fs', root: local }, elsewhere: { type: 'fs', root: elsewhere, cors: { allowed_origins: ['https://elsewhere.example'] } } },
    }))
    page = await rig.openPage()
  })
  after(() => rig?.close())

  it('plays a presigned video and seeks to the middle and near the end (Range requests at the gateway)', async () => {
    const url = rig.presign({ path: 'media/testsrc.webm' })
    const tab = await rig.openPage()
    const seenBefore = rig.seen.length
    const result = await tab.evaluate(async (src) => {
      const v = document.createElement('video')
      v.muted = true
      v.crossOrigin = 'anonymous'
      v.preload = 'metadata'
      document.body.append(v)
      const event = (name: string) =>
        new Promise<void>((resolve, reject) => {
          v.addEventListener(name, () => resolve(), { once: true })
          v.addEventListener('error', () => reject(new Error(`media error ${v.error?.code}: ${v.error?.message}`)), { once: true })
        })
      const loaded = event('loadedmetadata')
      v.src = src
      await loaded
      const seek = async (to: number) => {
        const seeked = event('seeked')
        v.currentTime = to
        await seeked
        // A frame at the new position is decoded and shown.
        if (v.readyState < HTMLMediaElement.HAVE_CURRENT_DATA) await event('canplay')
        return { at: v.currentTime, readyState: v.readyState }
      }
      const middle = await seek(v.duration / 2)
      const end = await seek(v.duration - 0.5)
      await v.play()
      return { duration: v.duration, middle, end }
    }, url)
    assert.ok(Math.abs(result.duration - 10) < 0.1, `duration ${result.duration}`)
    assert.ok(Math.abs(result.middle.at - 5) < 0.5, `middle at ${result.middle.at}`)
    assert.ok(result.end.at >= 9, `end at ${result.end.at}`)
    const requests = rig.seen.slice(seenBefore).filter((r) => r.path === '/local/media/testsrc.webm')
    const size = spread.length
    const shown = JSON.stringify(requests)
    // Every request is a ranged GET from the page; each answered so far is a 206 (under load
    // the last one may still be on its way when the seek is over).
    assert.ok(requests.every((r) => r.method === 'GET' && r.range?.startsWith('bytes=') && r.origin === rig.pageOrigin && (r.status ?? 206) === 206), shown)
    assert.equal(requests[0]?.status, 206, shown)
    const starts = requests.map((r) => Number(/^bytes=(\d+)-/.exec(r.range!)![1]) / size)
    assert.ok(starts.some((at) => at > 0.4 && at < 0.6), `a Range request for the middle: ${shown}`)
    assert.ok(starts.some((at) => at > 0.8 && at < 0.97), `a Range request near the end: ${shown}`)
    await tab.close()
  })

  it('fetch() reads ETag, and with a Range header Content-Range, from a presigned GET', async () => {
    const url = rig.presign({ path: 'hello.txt' })
    const result = await page.evaluate(async (src) => {
      const whole = await fetch(src)
      const part = await fetch(src, { headers: { Range: 'bytes=6-9' } })
      return {
        whole: { status: whole.status, etag: whole.headers.get('etag'), length: whole.headers.get('content-length'), text: await whole.text() },
        part: { status: part.status, range: part.headers.get('content-range'), etag: part.headers.get('etag'), text: await part.text() },
      }
    }, url)
    const head = await rawRequest(rig.gateway.url, 'HEAD', '/local/hello.txt', { Authorization: `Bearer ${BEARER}` })
    assert.deepEqual(result.whole, { status: 200, etag: head.headers.etag, length: '20', text: 'hello from cachegate' })
    assert.deepEqual(result.part, { status: 206, range: 'bytes 6-9/20', etag: head.headers.etag, text: 'from' })
  })

  it('fetch() can read why a request failed: the 401 of an expired link, with its JSON body', async () => {
    const url = rig.presign({ path: 'hello.txt', expiresIn: 60, now: Date.now() - 3_600_000 })
    const result = await page.evaluate(async (src) => {
      const res = await fetch(src)
      return { status: res.status, body: await res.json() }
    }, url)
    assert.deepEqual(result, { status: 401, body: { error: 'unauthorized', message: 'expired' } })
  })

  it('uploads a Blob with a presigned PUT: the preflight passes, the object lands with its type', async () => {
    const url = rig.presign({ path: 'uploads/pixel.bin', method: 'PUT' })
    const seenBefore = rig.seen.length
    const result = await page.evaluate(async ({ src, png }) => {
      const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0))
      const res = await fetch(src, { method: 'PUT', body: new Blob([bytes], { type: 'image/png' }) })
      return { status: res.status, body: await res.json(), etag: res.headers.get('etag') }
    }, { src: url, png: PIXEL_PNG })
    assert.equal(result.status, 200)
    assert.equal(result.body.content_type, 'image/png')
    const [preflight, put] = rig.seen.slice(seenBefore)
    assert.deepEqual(
      { method: preflight?.method, requestMethod: preflight?.requestMethod, status: preflight?.status },
      { method: 'OPTIONS', requestMethod: 'PUT', status: 204 },
    )
    assert.match(preflight!.requestHeaders ?? '', /content-type/)
    assert.deepEqual({ method: put?.method, status: put?.status }, { method: 'PUT', status: 200 })
    const stored = await rawRequest(rig.gateway.url, 'GET', '/local/uploads/pixel.bin', { Authorization: `Bearer ${BEARER}` })
    assert.equal(stored.headers['content-type'], 'image/png')
    assert.deepEqual(stored.body, Buffer.from(PIXEL_PNG, 'base64'))
    assert.equal(stored.headers.etag, result.etag)
  })

  it('fetch() with a bearer token: the preflight allows authorization', async () => {
    const seenBefore = rig.seen.length
    const result = await page.evaluate(
      async ({ src, token }) => {
        const res = await fetch(src, { headers: { Authorization: `Bearer ${token}` } })
        return { status: res.status, text: await res.text(), cacheStatus: res.headers.get('x-cg-status') }
      },
      { src: `${rig.gateway.url}/local/hello.txt`, token: BEARER },
    )
    assert.equal(result.status, 200)
    assert.equal(result.text, 'hello from cachegate')
    assert.match(result.cacheStatus ?? '', /^hit=/)
    const preflight = rig.seen.slice(seenBefore).find((r) => r.method === 'OPTIONS')
    assert.equal(preflight?.requestHeaders, 'authorization')
    assert.equal(preflight?.status, 204)
  })

  it('is blocked where its origin is not allowed (a store allowing another origin)', async () => {
    const get = rig.presign({ bucket: 'elsewhere', path: 'hello.txt' })
    const put = rig.presign({ bucket: 'elsewhere', path: 'planted.txt', method: 'PUT' })
    const seenBefore = rig.seen.length
    const result = await page.evaluate(
      async ({ get, put, bearer, token }) => {
        const outcome = (request: Promise<Response>) => request.then((res) => `status ${res.status}`, (error: Error) => error.name)
        return {
          get: await outcome(fetch(get)),
          put: await outcome(fetch(put, { method: 'PUT', body: 'planted', headers: { 'Content-Type': 'text/plain' } })),
          bearer: await outcome(fetch(bearer, { headers: { Authorization: `Bearer ${token}` } })),
        }
      },
      { get, put, bearer: `${rig.gateway.url}/elsewhere/hello.txt`, token: BEARER },
    )
    assert.deepEqual(result, { get: 'TypeError', put: 'TypeError', bearer: 'TypeError' })
    const seen = rig.seen.slice(seenBefore).map((r) => `${r.method} ${r.path} ${r.status}`)
    // The simple GET is sent (the browser withholds the answer); the others stop at their preflight.
    assert.deepEqual(seen, ['GET /elsewhere/hello.txt 200', 'OPTIONS /elsewhere/planted.txt 403', 'OPTIONS /elsewhere/hello.txt 403'])
  })

  it('a tab opened on an expired link shows a page saying when it expired', async () => {
    const now = Date.UTC(2026, 4, 6, 7, 8, 0)
    const tab = await rig.openPage()
    const response = await tab.goto(rig.presign({ path: 'hello.txt', expiresIn: 120, now }))
    assert.equal(response?.status(), 401)
    assert.equal(await tab.title(), 'This link cannot be used')
    assert.match(await tab.locator('body').innerText(), /This link expired at 2026-05-06 07:10:00 UTC\./)
    await tab.close()
  })

  it('a tab opened on a link for another file shows "not valid for this file"', async () => {
    const tab = await rig.openPage()
    const url = rig.presign({ path: 'other.txt' }).replace('/other.txt?', '/hello.txt?')
    const response = await tab.goto(url)
    assert.equal(response?.status(), 401)
    assert.match(await tab.locator('body').innerText(), /This link is not valid for this file\./)
    await tab.close()
  })

  it('a cross-origin <a> to a link with fn downloads under that name (Content-Disposition), the bytes intact', async () => {
    const filename = 'Report Q3 €.pdf'
    const url = rig.presign({ path: 'reports/q3.bin', filename })
    const tab = await rig.openPage()
    // Cross-origin, so a `download` attribute would be ignored: the name is the gateway's.
    await tab.evaluate((href) => {
      const a = document.createElement('a')
      a.href = href
      a.textContent = 'report'
      document.body.append(a)
    }, url)
    const downloading = tab.waitForEvent('download')
    await tab.click('a')
    const download = await downloading
    assert.equal(download.url(), url)
    assert.equal(download.suggestedFilename(), filename)
    const saved = path.join(await tempDir(), 'saved.pdf')
    await download.saveAs(saved)
    assert.deepEqual(await readFile(saved), report)
    await tab.close()
  })

  it('a link with disp inline opened in a tab is displayed, not downloaded', async () => {
    const tab = await rig.openPage()
    let downloads = 0
    tab.on('download', () => downloads++)
    // A download would make goto() throw ("Download is starting") instead of showing the text.
    const response = await tab.goto(rig.presign({ path: 'hello.txt', filename: 'hello €.txt', disposition: 'inline' }))
    assert.equal(response?.status(), 200)
    assert.match(response?.headers()['content-disposition'] ?? '', /^inline; filename="hello \?\.txt"; filename\*=UTF-8''hello%20%E2%82%AC\.txt$/)
    assert.equal(await tab.locator('body').innerText(), 'hello from cachegate')
    assert.equal(downloads, 0)
    await tab.close()
  })

  it('a prefix link works inside its prefix; outside it a tab shows the 403 page and fetch() reads a 403 JSON body', async () => {
    const inside = rig.presign({ prefix: 'media/', path: 'media/clip.txt' })
    const outside = inside.replace('/local/media/clip.txt?', '/local/hello.txt?')
    assert.notEqual(outside, inside)
    const tab = await rig.openPage()
    const response = await tab.goto(outside)
    assert.equal(response?.status(), 403)
    assert.equal(await tab.title(), 'This request is not allowed')
    assert.match(await tab.locator('body').innerText(), /This link is not valid for this file\./)
    await tab.close()
    const result = await page.evaluate(
      async ({ inside, outside }) => {
        const read = async (src: string) => {
          const res = await fetch(src)
          return { status: res.status, type: res.headers.get('content-type'), body: await res.text() }
        }
        return { inside: await read(inside), outside: await read(outside) }
      },
      { inside, outside },
    )
    assert.deepEqual(result.inside, { status: 200, type: 'text/plain', body: 'inside the prefix' })
    // Readable at all: the error carries the CORS headers (else fetch() would reject).
    assert.equal(result.outside.status, 403)
    assert.match(result.outside.type ?? '', /^application\/json/)
    assert.deepEqual(JSON.parse(result.outside.body), { error: 'forbidden', message: 'link is for prefix media/ only' })
  })
})
