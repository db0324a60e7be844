/**
 * Child processes for the benchmarks: every server runs pinned to one core (`taskset`), in
 * its own process group, and is registered here so that it is killed at the end whatever
 * happens (normal end, an exception, Ctrl-C, SIGTERM).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, openSync, readSync, statSync, truncateSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

/** Load generator and harness on one core, every server on the other (2-core machines). */
export const CLIENT_CORE = '0'
export const SERVER_CORE = availableParallelism() > 1 ? '1' : '0'

export interface Child {
  name: string
  process: ChildProcess
  pid: number
  /** Everything the child wrote so far (stdout + stderr), for error messages. */
  output(): string
  /** SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>
  exited: Promise<unknown>
}

const children = new Set<Child>()
/** Run after the children are stopped on Ctrl-C / SIGTERM (temp directories). */
const cleanups: (() => Promise<unknown>)[] = []
let hooked = false
let interrupted = false

/** True once Ctrl-C / SIGTERM arrived: the errors of killed children are expected then. */
export function isInterrupted(): boolean {
  return interrupted
}

/** Registers clean-up for the signal path; normal ends clean up in their own `finally`. */
export function onInterrupt(cleanup: () => Promise<unknown>): void {
  cleanups.push(cleanup)
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal)
  } catch {
    // Already gone.
  }
}

/** Last resort on any exit path: SIGKILL every group still registered (synchronous). */
function hookExit(): void {
  if (hooked) return
  hooked = true
  process.on('exit', () => {
    for (const child of children) killGroup(child.pid, 'SIGKILL')
  })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      interrupted = true
      process.stderr.write(`\nbench: ${signal}, stopping ${children.size} child process(es)\n`)
      void stopAll()
        .then(() => Promise.allSettled(cleanups.map((cleanup) => cleanup())))
        .finally(() => process.exit(130))
    })
  }
}

/** Pins this process (the harness) to the client core, so it never competes with servers. */
export function pinSelf(): void {
  try {
    execFileSync('taskset', ['-pc', CLIENT_CORE, String(process.pid)], { stdio: 'ignore' })
  } catch {
    process.stderr.write('bench: taskset not available; processes are not pinned to cores\n')
  }
}

export interface StartOptions {
  /** Core list for `taskset -c`; the server core by default. */
  core?: string
  env?: NodeJS.ProcessEnv
  cwd?: string
  /**
   * The child's stdout goes to this file (appended, cut back when it grows) instead of a pipe
   * the harness reads: a gateway's access log is ~30,000 lines/s under wrk, and reading them
   * here took CPU from wrk on the client core, charging the harness's work to the log.
   */
  stdoutFile?: string
}

/** A stdout file is cut back to empty past this size (output() then shows what came since). */
const STDOUT_FILE_MAX = 16 * 1024 * 1024

/** The last 64 KiB of a file, or '' when it cannot be read. */
function fileTail(file: string): string {
  try {
    const size = statSync(file).size
    const fd = openSync(file, 'r')
    try {
      const length = Math.min(size, 64 * 1024)
      const buffer = Buffer.alloc(length)
      readSync(fd, buffer, 0, length, size - length)
      return buffer.toString()
    } finally {
      closeSync(fd)
    }
  } catch {
    return ''
  }
}

/** Spawns `command ...args` under `taskset -c <core>` in a new process group and registers it. */
export function startChild(name: string, command: string, args: string[], options: StartOptions = {}): Child {
  hookExit()
  const core = options.core ?? SERVER_CORE
  const stdoutFd = options.stdoutFile === undefined ? undefined : openSync(options.stdoutFile, 'a')
  const proc = spawn('taskset', ['-c', core, command, ...args], {
    detached: true,
    stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'],
    env: options.env ?? process.env,
    cwd: options.cwd,
  })
  if (stdoutFd !== undefined) closeSync(stdoutFd)
  if (proc.pid === undefined) throw new Error(`${name}: spawn failed`)
  const { stdoutFile } = options
  const trimmer =
    stdoutFile &&
    setInterval(() => {
      try {
        // O_APPEND: the child's next write goes to the new end.
        if (statSync(stdoutFile).size > STDOUT_FILE_MAX) truncateSync(stdoutFile, 0)
      } catch {}
    }, 1000)
  if (trimmer) trimmer.unref()
  let output = ''
  const keep = (data: Buffer) => {
    output += data.toString()
    // Keep only the tail: a chatty child must not grow the harness's memory.
    if (output.length > 64 * 1024) output = output.slice(-32 * 1024)
  }
  proc.stdout?.on('data', keep)
  proc.stderr?.on('data', keep)
  const exited = once(proc, 'exit').catch(() => undefined)
  const pid = proc.pid
  const child: Child = {
    name,
    process: proc,
    pid,
    output: () => (stdoutFile ? fileTail(stdoutFile) + output : output),
    exited,
    async stop(graceMs = 5000) {
      if (proc.exitCode === null && proc.signalCode === null) {
        killGroup(pid, 'SIGTERM')
        const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs)
        await exited
        clearTimeout(timer)
      }
      // Any grandchild (nginx workers) that outlived its parent goes too.
      killGroup(pid, 'SIGKILL')
      children.delete(child)
    },
  }
  children.add(child)
  proc.on('exit', () => {
    if (trimmer) clearInterval(trimmer)
    if (proc.exitCode !== 0 && proc.signalCode === null && children.has(child)) {
      process.stderr.write(`bench: ${name} exited early with code ${proc.exitCode}\n${output.slice(-2000)}\n`)
    }
  })
  return child
}

/** Resolves with the first match of `pattern` in the child's output (stdout or stderr). */
export async function waitForOutput(child: Child, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const match = pattern.exec(child.output())
    if (match) return match
    if (child.process.exitCode !== null || child.process.signalCode !== null) break
    await sleep(20)
  }
  throw new Error(`${child.name}: no ${pattern} within ${timeoutMs} ms; output:\n${child.output().slice(-3000)}`)
}

/** Runs a command to completion (pinned), returning stdout; registered so Ctrl-C kills it. */
export async function runToEnd(name: string, command: string, args: string[], options: StartOptions = {}): Promise<string> {
  const child = startChild(name, command, args, { core: CLIENT_CORE, ...options })
  let stdout = ''
  child.process.stdout?.on('data', (d: Buffer) => (stdout += d.toString()))
  await child.exited
  children.delete(child)
  const code = child.process.exitCode
  if (code !== 0) throw new Error(`${name} exited with ${code ?? child.process.signalCode}:\n${child.output().slice(-3000)}`)
  return stdout
}

/** Stops every registered child, servers in reverse start order. */
export async function stopAll(): Promise<void> {
  const all = [...children].reverse()
  for (const child of all) await child.stop().catch(() => {})
}
