/** Turns the measurements of `bench/run.ts` into the markdown of bench/RESULTS.md. */
import { COLD_VARIANTS, type ColdRep, type CoalesceRound } from './cold.ts'
import { type Verdict, count, fixed, median, table, verdictCell } from './report.ts'
import type { WorkloadResult } from './throughput.ts'

const MiB = 2 ** 20

function labelOf(result: WorkloadResult, id: string): string {
  const { targets, skipped } = result.workload
  return targets.find((t) => t.id === id)?.label ?? skipped.find((s) => s.id === id)?.label ?? id
}

/** One row per comparison: per-round ratios, their median, the goal and the verdict. */
export function ratioRows(results: WorkloadResult[]): { rows: string[][]; verdicts: Verdict[] } {
  const rows: string[][] = []
  const verdicts: Verdict[] = []
  for (const result of results) {
    const { workload, runs, skipped } = result
    for (const cmp of workload.comparisons) {
      const subject = runs.get(cmp.subject)
      const candidates = (Array.isArray(cmp.baseline) ? cmp.baseline : [cmp.baseline]).filter((id) => runs.has(id))
      // Several possible ceilings: compare with the fastest (the honest one).
      const baselineId = candidates.sort((a, b) => median(runs.get(b)!.map((r) => r.rps)) - median(runs.get(a)!.map((r) => r.rps)))[0]
      const name = `${labelOf(result, cmp.subject)} vs ${baselineId ? labelOf(result, baselineId) : String(cmp.baseline)}`
      if (!subject || !baselineId) {
        const missing = !subject ? cmp.subject : String(cmp.baseline)
        const reason = skipped.get(missing) ?? workload.skipped.find((s) => s.id === missing)?.reason ?? `${missing} not measured`
        rows.push([workload.title, name, '–', '–', cmp.goal, `skipped (${reason})`])
        verdicts.push('skipped')
        continue
      }
      const baseline = runs.get(baselineId)!
      const ratios = subject.map((r, i) => r.rps / (baseline[i]?.rps ?? NaN))
      const ratio = median(ratios)
      const verdict: Verdict = cmp.min === undefined ? 'info' : ratio >= cmp.min ? 'met' : 'missed'
      verdicts.push(verdict)
      rows.push([workload.title, name, ratios.map((r) => fixed(r)).join(' / '), `**${fixed(ratio)}×**`, cmp.goal, verdictCell(verdict)])
    }
  }
  return { rows, verdicts }
}

export function figuresTable(results: WorkloadResult[]): string {
  const rows: string[][] = []
  for (const { workload, runs, skipped } of results) {
    for (const target of workload.targets) {
      const list = runs.get(target.id)
      if (!list) {
        rows.push([workload.title, target.label, '–', '–', '–', '–', '–', `skipped: ${skipped.get(target.id) ?? 'not run'}`])
        continue
      }
      const errors = list.reduce((sum, r) => sum + r.errors, 0)
      rows.push([
        workload.title,
        target.label,
        count(median(list.map((r) => r.rps))),
        count(median(list.map((r) => r.bytesPerSecond / MiB))),
        fixed(median(list.map((r) => r.p50Ms))),
        fixed(median(list.map((r) => r.p99Ms))),
        String(errors),
        list.map((r) => count(r.rps)).join(' / '),
      ])
    }
    for (const s of workload.skipped) rows.push([workload.title, s.label, '–', '–', '–', '–', '–', `skipped: ${s.reason}`])
  }
  return table(['workload', 'server', 'req/s (median)', 'MiB/s', 'p50 ms', 'p99 ms', 'errors', 'req/s per round'], rows, ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'l'])
}

export function coldSection(reps: ColdRep[]): { text: string; verdicts: Verdict[] } {
  if (reps.length === 0) return { text: '_not run_', verdicts: [] }
  const verdicts: Verdict[] = []
  const rows: string[][] = []
  const direct = reps.map((r) => r.direct)
  for (const variant of COLD_VARIANTS) {
    const got = reps.map((r) => r[variant.id])
    const ttfb = got.map((g) => g.ttfbMs)
    const total = got.map((g) => g.totalMs)
    if (variant.id === 'direct') {
      rows.push([variant.label, ttfb.map((v) => fixed(v, 1)).join(' / '), fixed(median(ttfb), 1), '', total.map((v) => count(v)).join(' / '), count(median(total)), '', 'baseline'])
      continue
    }
    const delta = median(got.map((g, i) => g.ttfbMs - direct[i]!.ttfbMs))
    const ratio = median(got.map((g, i) => g.totalMs / direct[i]!.totalMs))
    // The bare proxy is a reference, not a subject: its cells carry no verdict.
    const reference = variant.id === 'proxy'
    const ttfbVerdict: Verdict = reference ? 'info' : delta <= 5 ? 'met' : 'missed'
    const totalVerdict: Verdict = reference ? 'info' : ratio <= 1.1 ? 'met' : 'missed'
    if (!reference) verdicts.push(ttfbVerdict, totalVerdict)
    rows.push([
      variant.label,
      ttfb.map((v) => fixed(v, 1)).join(' / '),
      fixed(median(ttfb), 1),
      `**${delta >= 0 ? '+' : ''}${fixed(delta, 1)}**${reference ? '' : ` ${verdictCell(ttfbVerdict)}`}`,
      total.map((v) => count(v)).join(' / '),
      count(median(total)),
      `**${fixed(ratio)}×**${reference ? '' : ` ${verdictCell(totalVerdict)}`}`,
      reference ? 'reference' : '',
    ])
  }
  const text = [
    table(['path', 'TTFB ms per rep', 'TTFB median', 'Δ TTFB vs direct (≤ +5 ms)', 'total ms per rep', 'total median', 'total ÷ direct (≤ 1.1×)', ''], rows, ['l', 'l', 'r', 'r', 'l', 'r', 'r', 'l']),
  ].join('\n')
  return { text, verdicts }
}

export function coalesceSection(rounds: CoalesceRound[], clients: number): { text: string; verdicts: Verdict[] } {
  if (rounds.length === 0) return { text: '_not run_', verdicts: [] }
  const rows = rounds.map((r) => [String(r.round), r.server, String(r.upstreamGets), String(r.upstreamRequests), `${r.ok}/${clients}`, count(r.maxTotalMs)])
  const gateway = rounds.filter((r) => r.server === 'gateway')
  const verdict: Verdict = gateway.every((r) => r.upstreamGets === 1 && r.ok === clients) ? 'met' : 'missed'
  const nginx = rounds.filter((r) => r.server === 'nginx')
  const text = [
    table(['round', 'server', 'upstream GETs', 'upstream requests', 'complete', 'slowest client ms'], rows, ['r', 'l', 'r', 'r', 'r', 'r']),
    '',
    `- Gateway, exactly 1 upstream GET per ${clients} concurrent cold GETs, all complete: ${verdictCell(verdict)}`,
    nginx.length ? `- nginx (\`proxy_cache_lock on\`) for context: ${nginx.map((r) => r.upstreamGets).join(', ')} upstream GET(s) per round` : '',
  ]
    .filter(Boolean)
    .join('\n')
  return { text, verdicts: [verdict] }
}
