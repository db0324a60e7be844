/** Samples a process's memory from /proc/<pid>/status (Linux). */
import { readFile } from 'node:fs/promises'

export interface MemorySample {
  /** Resident set size now, bytes. */
  rss: number
  /** Peak resident set size over the process's life (VmHWM), bytes. */
  hwm: number
}

export async function readMemory(pid: number): Promise<MemorySample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') }
}

/** Samples every `intervalMs` until `stop()`; resolves with every sample taken. */
export function sampleMemory(pid: number, intervalMs = 50): { stop(): Promise<MemorySample[]> } {
  const samples: MemorySample[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      samples.push(await readMemory(pid))
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      samples.push(await readMemory(pid))
      return samples
    },
  }
}
