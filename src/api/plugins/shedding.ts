// Load shedding: refuse quickly instead of queueing without bound.
//
// Two independent guards, both answering 503 OVERLOADED with Retry-After:
// - process pressure (@fastify/under-pressure): event-loop delay, heap, RSS;
// - work waiting for the database: ingestion calls in flight are counted
//   against a bound (InFlightGate). Past it a request is refused before its
//   body is read (onRequest) and, authoritatively, before the writer would
//   queue for a connection (app.ingestGate), so nothing is written.
// Public routes (health, metrics, documentation, CORS preflight) are never shed:
// operators need them most when the service is struggling.
import os from 'node:os'
import v8 from 'node:v8'
import underPressure from '@fastify/under-pressure'
import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import { Errors } from '../../errors.ts'
import { RETRY_AFTER_SECONDS } from '../error-handler.ts'

declare module 'fastify' {
  interface FastifyInstance {
    ingestGate: InFlightGate
  }
}

export interface PressureLimits {
  /** Mean event-loop delay (ms) over a sample interval; 0 disables. */
  maxEventLoopDelay?: number
  /** V8 heap in use (bytes); 0 disables. */
  maxHeapUsedBytes?: number
  /** Resident set size (bytes); 0 disables. */
  maxRssBytes?: number
  /** How often the process is sampled (ms). */
  sampleInterval?: number
}

export interface SheddingPluginOptions {
  poolMax: number
  /** Ingestion calls allowed in flight per pool connection while a queue stands (the rest wait for one). */
  inFlightPerConnection?: number
  /** How many times that many are admitted while no queue stands. */
  burstFactor?: number
  pressure?: PressureLimits
}

// Little's law: at the contract's 500 batches/s, 160 calls in flight (10
// connections x 16) means an average wait of 320 ms, past LAG_SLO_MS (250):
// clients are already being told to slow down before anything is refused.
// And at most 160 batches (40 MB at the default MAX_BATCH_BYTES) wait at once
// while a queue stands, twice that while none does (InFlightGate).
export const DEFAULT_IN_FLIGHT_PER_CONNECTION = 16
export const DEFAULT_BURST_FACTOR = 2

/** Defaults leave headroom below the hard limits V8 and the container enforce. */
export function defaultPressureLimits(): Required<PressureLimits> {
  // constrainedMemory() is the cgroup limit, or 0 / 2^64 when there is none.
  const constrained = process.constrainedMemory()
  const memory = Math.min(constrained > 0 ? constrained : Infinity, os.totalmem())
  return {
    maxEventLoopDelay: 1000,
    maxHeapUsedBytes: Math.floor(v8.getHeapStatistics().heap_size_limit * 0.9),
    maxRssBytes: Math.floor(memory * 0.9),
    sampleInterval: 500,
  }
}

export interface GateOptions {
  /** Calls admitted while a queue stands. */
  bound: number
  /** Calls admitted while none does (at least `bound`). */
  burstBound?: number
  /** A call answered within this long shows that no queue stands. */
  targetMs?: number
  /** With no such call, and the gate never empty, for this long, a queue stands. */
  intervalMs?: number
  onRefused?: () => void
  /** Clock in milliseconds; tests inject one. */
  now?: () => number
}

/**
 * Counts ingestion calls between acquire and release against a bound that
 * depends on whether a queue stands (after CoDel, RFC 8289).
 *
 * A fixed count is a wait that shrinks as the rate grows: 160 calls are 320 ms
 * at 500 batches/s but 119 ms at 1,344/s, so there a database stall of a few
 * hundred milliseconds (a new WAL segment, a lock wait) shed requests that
 * would have been answered within the lag SLO a moment later. A burst, which drains,
 * is told apart from an overload, which does not, the way CoDel does it: while
 * calls keep being answered within `targetMs` (or the gate empties) the larger
 * `burstBound` applies; once neither has happened for `intervalMs` the queue
 * is standing and `bound` applies again, so under a sustained overload
 * accepted requests wait about as long as with the plain count.
 */
export class InFlightGate {
  readonly standingBound: number
  readonly burstBound: number
  readonly targetMs: number
  readonly intervalMs: number
  readonly #onRefused: () => void
  readonly #now: () => number
  inFlight = 0
  /** When a call last showed that no queue stands. */
  #clearAt: number

  constructor(options: GateOptions) {
    this.standingBound = options.bound
    this.burstBound = Math.max(options.bound, options.burstBound ?? options.bound)
    this.targetMs = options.targetMs ?? 50
    this.intervalMs = options.intervalMs ?? 1000
    this.#onRefused = options.onRefused ?? (() => {})
    this.#now = options.now ?? (() => performance.now())
    this.#clearAt = this.#now()
  }

  get standing(): boolean {
    return this.#standingAt(this.#now())
  }

  /** The bound in force now. */
  get bound(): number {
    return this.#boundAt(this.#now())
  }

  get full(): boolean {
    return this.inFlight >= this.bound
  }

  /**
   * Takes a slot or throws OVERLOADED. The returned release frees it and
   * answers how long the slot was held (ms; the same on a repeated call), so
   * the caller need not time the call again.
   */
  acquire(): () => number {
    const acquiredAt = this.#now()
    if (this.inFlight >= this.#boundAt(acquiredAt)) {
      this.#onRefused()
      throw new Errors.OVERLOADED(String(RETRY_AFTER_SECONDS))
    }
    if (this.inFlight === 0) this.#clearAt = acquiredAt
    this.inFlight++
    let heldMs: number | undefined
    return () => {
      if (heldMs !== undefined) return heldMs
      const now = this.#now()
      heldMs = now - acquiredAt
      this.inFlight--
      if (heldMs <= this.targetMs) this.#clearAt = now
      return heldMs
    }
  }

  // An empty gate has no queue: its next call would find it clear (acquire),
  // so the gauges say so too rather than the last queue's state.
  #standingAt(now: number): boolean {
    return this.inFlight > 0 && now - this.#clearAt > this.intervalMs
  }

  #boundAt(now: number): number {
    return this.#standingAt(now) ? this.standingBound : this.burstBound
  }
}

export default fp<SheddingPluginOptions>(
  async (app, options) => {
    const registers = [app.metrics.registry]
    const shed = new Counter({
      name: 'shed_requests_total',
      help: 'Requests refused with 503 OVERLOADED, by reason',
      labelNames: ['reason'] as const,
      registers,
    })
    const bound = Math.max(1, Math.floor(options.poolMax * (options.inFlightPerConnection ?? DEFAULT_IN_FLIGHT_PER_CONNECTION)))
    const gate = new InFlightGate({
      bound,
      burstBound: Math.floor(bound * (options.burstFactor ?? DEFAULT_BURST_FACTOR)),
      onRefused: () => shed.inc({ reason: 'in_flight' }),
    })

    new Gauge({
      name: 'ingest_in_flight',
      help: 'Ingestion calls admitted and not yet finished (waiting for or using the database)',
      registers,
      collect() {
        this.set(gate.inFlight)
      },
    })
    // postgres.js does not expose its queue, so the pool gauges are estimated
    // from the ingestion calls in flight (other queries are few and short).
    // With group commit, calls coalesce: the estimates are then upper bounds.
    new Gauge({
      name: 'db_pool_in_use_estimate',
      help: 'Pool connections busy with ingestion calls (estimate)',
      registers,
      collect() {
        this.set(Math.min(gate.inFlight, options.poolMax))
      },
    })
    new Gauge({
      name: 'db_pool_waiting_estimate',
      help: 'Ingestion calls waiting for a pool connection (estimate)',
      registers,
      collect() {
        this.set(Math.max(0, gate.inFlight - options.poolMax))
      },
    })
    new Gauge({ name: 'db_pool_max', help: 'Pool size', registers }).set(options.poolMax)
    new Gauge({
      name: 'ingest_in_flight_bound',
      help: 'Ingestion calls in flight before 503 OVERLOADED, now (lower while a queue stands)',
      registers,
      collect() {
        this.set(gate.bound)
      },
    })

    const overloaded = (reason: string) => {
      shed.inc({ reason })
      return new Errors.OVERLOADED(String(RETRY_AFTER_SECONDS))
    }

    const limits = { ...defaultPressureLimits(), ...options.pressure }
    await app.register(underPressure, {
      ...limits,
      pressureHandler: async (request, _reply, type) => {
        if (request.routeOptions.config.public) return
        throw overloaded(type)
      },
    })

    app.decorate('ingestGate', gate)

    // Refuse before the body is read when the gate is already full.
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config.ingest && gate.full) throw overloaded('in_flight')
    })
  },
  { name: 'shedding', dependencies: ['metrics'] },
)
