// GET /metrics in Prometheus text format. Each app owns its registry (never
// prom-client's global one), so several apps in one process (tests) do not
// collide. This plugin measures requests; the plugins that own a concern
// (ingest, rate limit, shedding) register their own metrics on app.metrics.
import fp from 'fastify-plugin'
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: { registry: Registry }
  }
}

export interface MetricsPluginOptions {
  /** Process metrics (memory, CPU, event-loop lag, GC); on by default. */
  processMetrics?: boolean
  /** Serve GET /metrics on the app; off when METRICS_PORT serves it instead (src/api/server.ts). */
  route?: boolean
}

/** Requests that matched no route share one label, so scanners cannot blow up cardinality. */
const UNMATCHED = '(unmatched)'

export default fp<MetricsPluginOptions>(
  async (app, options) => {
    const registry = new Registry()
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry })

    const requests = new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests by route, method and status code',
      labelNames: ['route', 'method', 'status'] as const,
      registers: [registry],
    })
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by route, method and status code',
      labelNames: ['route', 'method', 'status'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    })

    app.decorate('metrics', { registry })
    app.addHook('onResponse', async (request, reply) => {
      const labels = {
        route: request.is404 ? UNMATCHED : (request.routeOptions.url ?? UNMATCHED),
        method: request.method,
        status: String(reply.statusCode),
      }
      requests.inc(labels)
      duration.observe(labels, reply.elapsedTime / 1000)
    })

    if (options.route ?? true) {
      app.get('/metrics', { config: { public: true }, schema: { hide: true } }, async (_request, reply) => {
        reply.type(registry.contentType)
        return registry.metrics()
      })
    }
  },
  { name: 'metrics' },
)
