#!/usr/bin/env -S node --no-memory-reducer --no-flush-bytecode
// --no-memory-reducer: V8 shrinks the heap after a few idle seconds, after which a server
// streaming large Buffers runs full GCs every few MiB (2.3x fewer 1 MiB disk hits/s measured).
// --no-flush-bytecode: V8 drops the bytecode of functions not run for a few GCs, and streaming
// runs a GC every few MiB, so each miss after a large transfer recompiled the store SDK's
// request path (5-10 ms more to the upstream's first byte, measured).
// cachegate runs its TypeScript sources directly: Node ≥ 22.18 strips types natively.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `cachegate: Node ${process.versions.node} is too old; it needs Node >= 22.18.\n` +
      `  In a clone, run it through npm (npm start / npx cachegate), which uses the pinned node@22 devDependency.\n`,
  )
  process.exit(1)
}
await import('../src/main.ts')
