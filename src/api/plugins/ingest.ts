// The ingestion writer and what it measures: every call's latency feeds the
// lag meter behind X-Client-Queue-Lag, which every response carries (contract
// section 4; 404, 429 and 503 included: onSend runs for errors too), so a
// client may read it from whichever answer it got last. Each call first takes a
// slot of the shedding gate, so past its bound a batch is refused, unwritten.
import fp from 'fastify-plugin'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { LagMeter } from '../../ingest/lag.ts'
import { groupCommitWriter } from '../../ingest/group-commit.ts'
import type { Stream } from '../../ingest/validate.ts'
import { directWriter, type BatchWriter } from '../../ingest/writer.ts'
import type { IngestResponse } from '../schemas/events.ts'

declare module 'fastify' {
  interface FastifyInstance {
    writer: BatchWriter
    lag: LagMeter
  }
}

/**
 * A write the database has not answered by then is answered 503
 * DATABASE_UNAVAILABLE: a server that hangs with the pool's connections open
 * (frozen, or its disk stalled) otherwise held every request until it came
 * back. Well above a healthy call under load (the slow-database test's lock
 * waits of 1.5 s included), and well below a client's own timeout (the SDK's 30 s).
 */
export const WRITE_DEADLINE_MS = 5000

/** The database did not answer a write in time: maybe written, maybe not; a retry is counted once. */
export class WriteDeadlineError extends Error {
  readonly code = 'WRITE_DEADLINE'
  constructor(ms: number) {
    super(`the database did not answer the write within ${ms} ms`)
  }
}

/** `work`'s result, or WriteDeadlineError after `ms`, when `work`'s signal aborts (a queued write is then never made). */
function withDeadline<T>(ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  // One promise rather than a race with a second one: this runs for every batch.
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = new WriteDeadlineError(ms)
      controller.abort(error)
      reject(error)
    }, ms)
    work(controller.signal).then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error: unknown) => (clearTimeout(timer), reject(error)),
    )
  })
}

export interface IngestPluginOptions {
  lagSloMs: number
  /** Coalesce concurrent calls (src/ingest/group-commit.ts) instead of one call per request. */
  groupCommit?: boolean
  writeDeadlineMs?: number
}

export default fp<IngestPluginOptions>(
  async (app, options) => {
    const lag = new LagMeter({ sloMs: options.lagSloMs })
    const direct = options.groupCommit ? groupCommitWriter(app.sql) : directWriter(app.sql)
    const metrics = ingestMetrics(app.metrics.registry, lag)
    const deadlineMs = options.writeDeadlineMs ?? WRITE_DEADLINE_MS
    const writer: BatchWriter = {
      async write(stream, rows) {
        const release = app.ingestGate.acquire()
        try {
          return await withDeadline(deadlineMs, (signal) => direct.write(stream, rows as never, signal))
        } finally {
          const ms = release()
          lag.observe(ms)
          metrics.callSeconds.observe({ stream }, ms / 1000)
        }
      },
    }
    app.decorate('writer', writer)
    app.decorate('lag', lag)
    app.addHook('preSerialization', async (request, reply, payload) => {
      const stream = request.routeOptions.config.ingest
      if (stream && reply.statusCode === 200) metrics.countOutcomes(stream, payload as IngestResponse)
      return payload
    })
    app.addHook('onSend', async (_request, reply) => {
      reply.header('x-client-queue-lag', String(lag.lagMs()))
    })
  },
  { name: 'ingest', dependencies: ['database', 'metrics', 'shedding'] },
)

function ingestMetrics(registry: Registry, lag: LagMeter) {
  const registers = [registry]
  const callSeconds = new Histogram({
    name: 'ingest_call_duration_seconds',
    help: 'Ingestion writer calls (waiting for and running the stored procedure), by stream',
    labelNames: ['stream'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  })
  const events = new Counter({
    name: 'ingest_events_total',
    help: 'Events of 200 ingestion responses by stream and outcome',
    labelNames: ['stream', 'outcome'] as const,
    registers,
  })
  new Gauge({
    name: 'ingest_queue_lag_ms',
    help: 'Current X-Client-Queue-Lag advice (ms)',
    registers,
    collect() {
      this.set(lag.lagMs())
    },
  })
  new Gauge({
    name: 'ingest_smoothed_latency_ms',
    help: 'Smoothed ingestion-call latency the lag advice is computed from (ms)',
    registers,
    collect() {
      this.set(lag.smoothedMs)
    },
  })
  return {
    callSeconds,
    countOutcomes(stream: Stream, response: IngestResponse) {
      events.inc({ stream, outcome: 'accepted' }, response.accepted)
      events.inc({ stream, outcome: 'duplicates' }, response.duplicates)
      events.inc({ stream, outcome: 'deferred' }, response.deferred)
      events.inc({ stream, outcome: 'rejected' }, response.rejected.length)
    },
  }
}
