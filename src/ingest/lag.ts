// X-Client-Queue-Lag: how much extra delay clients should add before their next
// flush. A smoothed (EWMA) ingestion-call latency within the SLO means 0; above
// it, the advice grows in proportion to the excess, capped at 30 s.
// See docs/architecture.md ("Backpressure") for the formula.
export const MAX_LAG_MS = 30000

export interface LagOptions {
  sloMs: number
  /** Weight of each new sample (0..1]. */
  alpha?: number
  /** Milliseconds of advised delay per millisecond of excess latency. */
  gain?: number
}

export class LagMeter {
  readonly sloMs: number
  readonly alpha: number
  readonly gain: number
  smoothedMs = 0

  constructor(options: LagOptions) {
    this.sloMs = options.sloMs
    this.alpha = options.alpha ?? 0.2
    this.gain = options.gain ?? 10
  }

  observe(latencyMs: number): void {
    this.smoothedMs = this.alpha * latencyMs + (1 - this.alpha) * this.smoothedMs
  }

  /** The advised extra delay in whole milliseconds. */
  lagMs(): number {
    const excess = this.smoothedMs - this.sloMs
    return excess <= 0 ? 0 : Math.min(MAX_LAG_MS, Math.round(excess * this.gain))
  }
}
