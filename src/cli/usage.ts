/** Bad command-line usage: printed with exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** Prints `cachegate: <message>` to stderr and exits. */
export function fail(message: string, code = 2): never {
  process.stderr.write(`cachegate: ${message}\n`)
  process.exit(code)
}
