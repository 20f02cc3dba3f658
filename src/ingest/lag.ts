// X-Client-Queue-Lag: how much extra delay clients should add before their next
// flush. The input is a smoothed (EWMA) ingestion-call latency; within the SLO
// the advice is 0, above it the advice grows in proportion to the excess,
// capped at 30 s. docs/edge.md ("Backpressure") gives the formula.
export const MAX_LAG_MS = 30000

export interface LagOptions {
  sloMs: number
  /** Weight of each new sample (0..1]. */
  alpha?: number
  /** Milliseconds of advised delay per millisecond of excess latency. */
  gain?: number
  /**
   * With no new sample for this long the smoothed latency halves. Clients that
   * obey a high lag send less, so without decay the last slow samples would
   * keep the advice high long after the database recovered.
   */
  idleHalfLifeMs?: number
  /** Clock in milliseconds; tests inject one. */
  now?: () => number
}

/** The advice for a smoothed latency: 0 within the SLO, then gain x excess, capped. */
export function advisedLagMs(smoothedMs: number, sloMs: number, gain: number): number {
  const excess = smoothedMs - sloMs
  return excess <= 0 ? 0 : Math.min(MAX_LAG_MS, Math.round(excess * gain))
}

export class LagMeter {
  readonly sloMs: number
  readonly alpha: number
  readonly gain: number
  readonly idleHalfLifeMs: number
  readonly #now: () => number
  #smoothedMs = 0
  #lastSampleAt = 0

  constructor(options: LagOptions) {
    this.sloMs = options.sloMs
    this.alpha = options.alpha ?? 0.2
    this.gain = options.gain ?? 10
    this.idleHalfLifeMs = options.idleHalfLifeMs ?? 5000
    this.#now = options.now ?? (() => performance.now())
    if (!(this.alpha > 0 && this.alpha <= 1)) throw new RangeError('alpha must be in (0, 1]')
  }

  /**
   * Records one ingestion call. The meter starts at 0 rather than at the first
   * sample: one slow first call (a cold connection) should not alarm clients.
   */
  observe(latencyMs: number): void {
    const now = this.#now()
    this.#smoothedMs = this.alpha * latencyMs + (1 - this.alpha) * this.#decayed(now)
    this.#lastSampleAt = now
  }

  /** The smoothed latency now, decayed for the time since the last sample. */
  get smoothedMs(): number {
    return this.#decayed(this.#now())
  }

  /** The advised extra delay in whole milliseconds. */
  lagMs(): number {
    return advisedLagMs(this.smoothedMs, this.sloMs, this.gain)
  }

  #decayed(now: number): number {
    const idle = now - this.#lastSampleAt
    return idle <= 0 ? this.#smoothedMs : this.#smoothedMs * 0.5 ** (idle / this.idleHalfLifeMs)
  }
}
