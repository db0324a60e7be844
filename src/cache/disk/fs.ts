import { createReadStream } from 'node:fs'
import * as fsp from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import type { Readable } from 'node:stream'

export type DiskOp = 'write' | 'read' | 'verify' | 'delete' | 'recover'

/** The few fs calls the tier makes; injectable so tests can fail them (ENOSPC, EIO). */
export interface DiskFs {
  open(file: string, flags: string, mode?: number): Promise<FileHandle>
  rename(from: string, to: string): Promise<void>
  unlink(file: string): Promise<void>
  mkdir(dir: string, options: { recursive: true; mode?: number }): Promise<unknown>
  readdir(dir: string): Promise<string[]>
  stat(file: string): Promise<{ size: number }>
  createReadStream(file: string, options: { start: number; end: number; highWaterMark: number }): Readable
}

export const nodeFs: DiskFs = {
  open: fsp.open,
  rename: fsp.rename,
  unlink: fsp.unlink,
  mkdir: fsp.mkdir,
  readdir: (dir) => fsp.readdir(dir),
  stat: fsp.stat,
  createReadStream,
}

/** An error from a system call (as opposed to, say, a checksum mismatch). */
export const isFsError = (error: unknown): boolean => error instanceof Error && 'syscall' in error
export const errorCode = (error: unknown): string | undefined => (error as NodeJS.ErrnoException | undefined)?.code
