/**
 * Every key of the README's configuration table appears in config.example.yaml (set, or
 * commented out with its default), so the example stays a complete reference.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { it } from 'node:test'
import { ROOT } from './helpers/gateway.ts'

it('config.example.yaml names every key of the README configuration table', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8')
  const example = readFileSync(path.join(ROOT, 'config.example.yaml'), 'utf8')
  const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## HTTP API'))
  const keys = [...table.matchAll(/^\| `([a-z_.<>]+)`/gm)].map((m) => m[1]!).filter((key) => !key.includes('<') && (key.includes('.') || key === 'listen'))
  assert.ok(keys.length > 20, `found ${keys.length} keys in the README table`)
  const missing = keys.filter((key) => {
    const leaf = key.split('.').at(-1)!
    return !new RegExp(`^\\s*(#\\s*)?${leaf}:`, 'm').test(example)
  })
  assert.deepEqual(missing, [])
})
