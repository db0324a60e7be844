/**
 * A real Chromium against a real gateway, from a page on another origin: the gateway listens
 * on 127.0.0.1, the test page is served by a tiny node:http server on 127.0.0.2 (another
 * loopback address, so another origin and the same address space: no Private Network Access
 * preflight). Started once per test file with `startBrowserRig`.
 *
 * Chromium is Debian's (`apt-get install chromium`, as `.ci/run` does), driven by
 * playwright-core. Without it the browser tests are skipped with a message, unless `CI` is
 * set: then they run, and fail.
 */
import { existsSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { type Browser, type Page, chromium } from 'playwright-core'
import { type PresignOptions, presign } from '../../src/auth/presign.ts'
import { type TestGateway, startGateway, tempDir } from './gateway.ts'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Why the browser tests are skipped, or false when they run (always under CI). */
export const skipBrowser: string | false =
  existsSync(CHROMIUM) || process.env.CI ? false : `chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH) to run the browser tests; with CI set they fail instead`

/** One request as the gateway received it (the query, which holds the signature, left out). */
export interface SeenRequest {
  method: string
  path: string
  origin?: string
  range?: string
  requestMethod?: string
  requestHeaders?: string
  /** The response status once its head is sent (undefined before). */
  readonly status?: number
}

/** `presign`'s options, v2 fields included, less what the rig knows (bucket defaults to `local`). */
export type RigPresignOptions = Omit<PresignOptions, 'baseUrl' | 'bucket' | 'privateKey'> & { bucket?: string }

export interface BrowserRig {
  gateway: TestGateway
  /** Where the test page lives, e.g. `http://127.0.0.2:41234`: the origin the gateway must allow. */
  pageOrigin: string
  browser: Browser
  /** Every request the gateway received, preflights included, in order. */
  seen: SeenRequest[]
  /** A fresh tab showing the (empty) test page on `pageOrigin`. */
  openPage(): Promise<Page>
  /** A presigned link to the gateway: the one place links are minted (a v2 link adds its options here). */
  presign(options: RigPresignOptions): string
  close(): Promise<void>
}

const TEST_PAGE = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>cachegate browser test</title></head><body></body></html>'

/**
 * Starts the page server, then the gateway with the config `raw(pageOrigin)` returns (store
 * roots are the caller's), then Chromium.
 */
export async function startBrowserRig(raw: (pageOrigin: string) => Record<string, unknown>): Promise<BrowserRig> {
  const pageServer = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Length': Buffer.byteLength(TEST_PAGE) }).end(TEST_PAGE)
  })
  await new Promise<void>((resolve, reject) => pageServer.once('error', reject).listen(0, '127.0.0.2', resolve))
  const pageOrigin = `http://127.0.0.2:${(pageServer.address() as AddressInfo).port}`
  const cleanups: (() => Promise<unknown>)[] = [() => new Promise((resolve) => pageServer.close(resolve))]
  try {
    const gateway = await startGateway({ root: await tempDir(), raw: raw(pageOrigin) })
    cleanups.push(() => gateway.close())
    const seen: SeenRequest[] = []
    gateway.server.prependListener('request', (incoming: http.IncomingMessage, outgoing: http.ServerResponse) => {
      const { headers } = incoming
      seen.push({
        method: incoming.method ?? '',
        path: (incoming.url ?? '').split('?')[0]!,
        origin: headers.origin,
        range: headers.range,
        requestMethod: headers['access-control-request-method'],
        requestHeaders: headers['access-control-request-headers'],
        // Read when asked: a media response may still be streaming, or be cut by the browser.
        get status() {
          return outgoing.headersSent ? outgoing.statusCode : undefined
        },
      })
    })
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'] })
    cleanups.push(() => browser.close())
    return {
      gateway,
      pageOrigin,
      browser,
      seen,
      async openPage() {
        const page = await browser.newPage()
        await page.goto(`${pageOrigin}/`)
        return page
      },
      presign: ({ bucket, ...options }) => presign({ ...options, baseUrl: gateway.url, bucket: bucket ?? 'local', privateKey: gateway.keys.private_key }),
      async close() {
        for (const cleanup of cleanups.reverse()) await cleanup()
      },
    }
  } catch (error) {
    for (const cleanup of cleanups.reverse()) await cleanup()
    throw error
  }
}
