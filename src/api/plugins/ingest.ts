// The ingestion writer and what it measures: every call's latency feeds the
// lag meter behind X-Client-Queue-Lag, which every ingestion response carries.
import fp from 'fastify-plugin'
import { LagMeter } from '../../ingest/lag.ts'
import { directWriter, type BatchWriter } from '../../ingest/writer.ts'

declare module 'fastify' {
  interface FastifyInstance {
    writer: BatchWriter
    lag: LagMeter
  }
}

export interface IngestPluginOptions {
  lagSloMs: number
}

export default fp<IngestPluginOptions>(
  async (app, options) => {
    const lag = new LagMeter({ sloMs: options.lagSloMs })
    const direct = directWriter(app.sql)
    const writer: BatchWriter = {
      async write(stream, rows) {
        const started = performance.now()
        try {
          return await direct.write(stream, rows as never)
        } finally {
          lag.observe(performance.now() - started)
        }
      },
    }
    app.decorate('writer', writer)
    app.decorate('lag', lag)
    app.addHook('onSend', async (request, reply) => {
      if (request.routeOptions.config.ingest) reply.header('x-client-queue-lag', String(lag.lagMs()))
    })
  },
  { name: 'ingest', dependencies: ['database'] },
)
