/** Slots of one second each: the window slides by a second at a time. */
const SLOTS = 60
const SLOT_MS = 1000

/**
 * At most `ratio` of the GETs of the last minute may be hedged, so a store that is slow for
 * everyone is not sent twice its load (`upstream.hedge_max_ratio`). The minute is 60 one-second
 * slots of (GETs, hedges); a hedge is allowed while hedges + 1 ≤ ratio × GETs in the window.
 * There is no burst allowance: with ratio 0.05 the first hedge needs 20 GETs in the minute.
 *
 * @example
 * const budget = new HedgeBudget(0.05)
 * budget.noteGet()
 * if (budget.tryHedge()) sendHedge()
 */
export class HedgeBudget {
  readonly #ratio: number
  readonly #now: () => number
  readonly #gets = new Float64Array(SLOTS)
  readonly #hedges = new Float64Array(SLOTS)
  /** The second each slot holds counts for. */
  readonly #second = new Float64Array(SLOTS).fill(-1)

  constructor(ratio: number, now: () => number = () => performance.now()) {
    if (!(ratio >= 0 && ratio <= 1)) throw new TypeError(`HedgeBudget: ratio must be in [0, 1], got ${ratio}`)
    this.#ratio = ratio
    this.#now = now
  }

  noteGet(): void {
    this.#gets[this.#slot()]!++
  }

  /** Spends one hedge if the window allows it. */
  tryHedge(): boolean {
    const slot = this.#slot()
    const second = this.#second[slot]!
    let gets = 0
    let hedges = 0
    for (let i = 0; i < SLOTS; i++) {
      if (this.#second[i]! <= second - SLOTS) continue
      gets += this.#gets[i]!
      hedges += this.#hedges[i]!
    }
    if (hedges + 1 > this.#ratio * gets) return false
    this.#hedges[slot]!++
    return true
  }

  /** The slot of the current second, emptied if it last held an older second. */
  #slot(): number {
    const second = Math.floor(this.#now() / SLOT_MS)
    const slot = second % SLOTS
    if (this.#second[slot] !== second) {
      this.#second[slot] = second
      this.#gets[slot] = 0
      this.#hedges[slot] = 0
    }
    return slot
  }
}
