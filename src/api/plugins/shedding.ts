// Load shedding: refuse quickly instead of queueing without bound.
//
// Two independent guards, both answering 503 OVERLOADED with Retry-After:
// - process pressure (@fastify/under-pressure): event-loop delay, heap, RSS;
// - work waiting for the database: ingestion calls in flight are counted
//   against a bound of pool size x factor. Past it a request is refused before
//   its body is read (onRequest) and, authoritatively, before the writer would
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
  /** Ingestion calls allowed in flight per pool connection (the rest wait for one). */
  inFlightPerConnection?: number
  pressure?: PressureLimits
}

// Little's law: at the contract's 500 batches/s, 160 calls in flight (10
// connections x 16) means an average wait of 320 ms, past LAG_SLO_MS (250):
// clients are already being told to slow down before anything is refused.
// And at most 160 batches (40 MB at the default MAX_BATCH_BYTES) wait at once.
export const DEFAULT_IN_FLIGHT_PER_CONNECTION = 16

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

/** Counts ingestion calls between acquire and release against a fixed bound. */
export class InFlightGate {
  readonly bound: number
  readonly #onRefused: () => void
  inFlight = 0

  constructor(bound: number, onRefused: () => void = () => {}) {
    this.bound = bound
    this.#onRefused = onRefused
  }

  get full(): boolean {
    return this.inFlight >= this.bound
  }

  /** Takes a slot or throws OVERLOADED; call the returned function exactly once. */
  acquire(): () => void {
    if (this.full) {
      this.#onRefused()
      throw new Errors.OVERLOADED(String(RETRY_AFTER_SECONDS))
    }
    this.inFlight++
    let released = false
    return () => {
      if (released) return
      released = true
      this.inFlight--
    }
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
    const perConnection = options.inFlightPerConnection ?? DEFAULT_IN_FLIGHT_PER_CONNECTION
    const gate = new InFlightGate(Math.max(1, Math.floor(options.poolMax * perConnection)), () => shed.inc({ reason: 'in_flight' }))

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
    new Gauge({ name: 'ingest_in_flight_bound', help: 'Ingestion calls in flight before 503 OVERLOADED', registers }).set(gate.bound)

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
