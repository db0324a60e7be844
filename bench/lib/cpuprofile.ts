/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): the top functions by self time,
 * with their inclusive time, and self time grouped by where the code lives.
 *
 *   node bench/lib/cpuprofile.ts <file.cpuprofile> [top=20]
 */
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

export interface FunctionTime {
  name: string
  where: string
  selfMs: number
  totalMs: number
}

export interface ProfileSummary {
  totalMs: number
  /** Excluding `(idle)`: the time the process was on the CPU (or waiting in a syscall). */
  busyMs: number
  functions: FunctionTime[]
  groups: { group: string; selfMs: number }[]
}

/** `file:///…/node_modules/@hono/node-server/dist/x.mjs` → `@hono/node-server/dist/x.mjs`. */
function shortUrl(url: string): string {
  if (!url) return ''
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length)
  const src = url.indexOf('/src/')
  if (src !== -1) return url.slice(src + 1)
  return url.replace(/^file:\/\//, '')
}

/** Where code lives: `src/…` file, npm package, Node internals, or a V8 pseudo-frame. */
function groupOf(frame: CallFrame): string {
  const { url, functionName } = frame
  if (!url) return functionName.startsWith('(') ? functionName : '(native / builtin)'
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/')
    return `node:${parts.slice(0, parts[0] === 'internal' ? 2 : 1).join('/')}`
  }
  const short = shortUrl(url)
  if (short.startsWith('src/')) return short
  if (url.includes('/node_modules/')) return short.startsWith('@') ? short.split('/').slice(0, 2).join('/') : short.split('/')[0]!
  return short
}

export function summarise(profile: CpuProfile): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const keyOf = (frame: CallFrame) => `${frame.functionName || '(anonymous)'}\u0000${frame.url}:${frame.lineNumber + 1}`
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  const groups = new Map<string, number>()
  const frames = new Map<string, CallFrame>()
  let totalUs = 0
  let idleUs = 0
  profile.samples.forEach((id, i) => {
    // timeDeltas[i] is the time before sample i; attribute it to that sample.
    const us = profile.timeDeltas[i] ?? 0
    totalUs += us
    const node = byId.get(id)
    if (!node) return
    const frame = node.callFrame
    if (frame.functionName === '(idle)') idleUs += us
    const key = keyOf(frame)
    frames.set(key, frame)
    self.set(key, (self.get(key) ?? 0) + us)
    const group = groupOf(frame)
    groups.set(group, (groups.get(group) ?? 0) + us)
    // Inclusive: once per distinct function on the stack (recursion counted once).
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const f = byId.get(at)!.callFrame
      const k = keyOf(f)
      if (seen.has(k)) continue
      seen.add(k)
      frames.set(k, f)
      total.set(k, (total.get(k) ?? 0) + us)
    }
  })
  const functions = [...self.entries()]
    .map(([key, us]) => {
      const frame = frames.get(key)!
      return {
        name: frame.functionName || '(anonymous)',
        where: frame.url ? `${shortUrl(frame.url)}:${frame.lineNumber + 1}` : '',
        selfMs: us / 1000,
        totalMs: (total.get(key) ?? us) / 1000,
      }
    })
    .sort((a, b) => b.selfMs - a.selfMs)
  return {
    totalMs: totalUs / 1000,
    busyMs: (totalUs - idleUs) / 1000,
    functions,
    groups: [...groups.entries()].map(([group, us]) => ({ group, selfMs: us / 1000 })).sort((a, b) => b.selfMs - a.selfMs),
  }
}

export async function readProfile(file: string): Promise<ProfileSummary> {
  return summarise(JSON.parse(await readFile(file, 'utf8')) as CpuProfile)
}

/** Markdown: the top `top` functions by self time and the top groups, as % of busy time. */
export function formatSummary(summary: ProfileSummary, top = 20): string {
  const pct = (ms: number) => `${((100 * ms) / summary.busyMs).toFixed(1)}%`
  const lines = [
    `Profile: ${(summary.totalMs / 1000).toFixed(1)} s sampled, ${(summary.busyMs / 1000).toFixed(1)} s not idle; percentages are of the non-idle time.`,
    '',
    '| # | self | self % | total % | function | where |',
    '| ---: | ---: | ---: | ---: | --- | --- |',
    ...summary.functions
      .filter((f) => f.name !== '(idle)')
      .slice(0, top)
      .map((f, i) => `| ${i + 1} | ${f.selfMs.toFixed(0)} ms | ${pct(f.selfMs)} | ${pct(f.totalMs)} | \`${f.name}\` | ${f.where} |`),
    '',
    '| self time by code location | self | % |',
    '| --- | ---: | ---: |',
    ...summary.groups
      .filter((g) => g.group !== '(idle)')
      .slice(0, 15)
      .map((g) => `| ${g.group} | ${g.selfMs.toFixed(0)} ms | ${pct(g.selfMs)} |`),
  ]
  return lines.join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, top] = process.argv.slice(2)
  if (!file) {
    process.stderr.write('usage: node bench/lib/cpuprofile.ts <file.cpuprofile> [top]\n')
    process.exit(2)
  }
  process.stdout.write(`${formatSummary(await readProfile(file), top ? Number(top) : 20)}\n`)
}
