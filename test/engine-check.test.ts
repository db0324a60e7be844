/**
 * The Node version check lives in bin/cachegate.js, not in package.json `engines` (npm printed
 * `EBADENGINE` for our own package on every `npm install` and `npx cachegate` under Node 20,
 * although both then run on the pinned node@22). Checked here by making the process report an
 * older version before the bin runs.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import path from 'node:path'
import { describe, it } from 'node:test'
import { promisify } from 'node:util'
import { NODE, ROOT, cleanEnv } from './helpers/gateway.ts'

const run = promisify(execFile)

/** Runs `bin/cachegate.js --help` in a Node that claims to be `version`. */
async function binAs(version: string): Promise<{ code: number; stderr: string }> {
  const pretend = `data:text/javascript,Object.defineProperty(process.versions, 'node', { value: '${version}' })`
  try {
    const { stderr } = await run(NODE, ['--import', pretend, path.join(ROOT, 'bin/cachegate.js'), '--help'], { env: cleanEnv() })
    return { code: 0, stderr }
  } catch (error) {
    const failed = error as { code: number; stderr: string }
    return { code: failed.code, stderr: failed.stderr }
  }
}

describe('Node version check (bin/cachegate.js)', () => {
  for (const version of ['20.20.2', '22.6.0', '22.17.9']) {
    it(`refuses Node ${version} with a clear message and exit code 1`, async () => {
      const { code, stderr } = await binAs(version)
      assert.equal(code, 1)
      assert.match(stderr, new RegExp(`^cachegate: Node ${version.replaceAll('.', '\\.')} is too old; it needs Node >= 22\\.18\\.`))
    })
  }

  for (const version of ['22.18.0', '24.0.0']) {
    it(`runs on Node ${version}`, async () => {
      const { code, stderr } = await binAs(version)
      assert.equal(code, 0, stderr)
    })
  }
})
