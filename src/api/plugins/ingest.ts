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

export interface IngestPluginOptions {
  lagSloMs: number
  /** Coalesce concurrent calls (src/ingest/group-commit.ts) instead of one call per request. */
  groupCommit?: boolean
}

export default fp<IngestPluginOptions>(
  async (app, options) => {
    const lag = new LagMeter({ sloMs: options.lagSloMs })
    const direct = options.groupCommit ? groupCommitWriter(app.sql) : directWriter(app.sql)
    const metrics = ingestMetrics(app.metrics.registry, lag)
    const writer: BatchWriter = {
      async write(stream, rows) {
        const release = app.ingestGate.acquire()
        try {
          return await direct.write(stream, rows as never)
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
