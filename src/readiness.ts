/**
 * Whether this gateway wants new traffic. It is ready once it listens (stores built, the disk
 * tier opened or given up on: server.ts listens only after both) and stops being ready when
 * shutdown begins, before it stops accepting: balancers polling `/health/ready` see 503 and
 * move new requests away while the ones already here are still answered.
 */
export class Readiness {
  #draining = false

  get draining(): boolean {
    return this.#draining
  }

  /** From now on `/health/ready` answers 503 and every response closes its connection. */
  drain(): void {
    this.#draining = true
  }
}
