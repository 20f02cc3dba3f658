// GET /api/health (contract section 6): 200 while the database answers, 503
// when it does not.
import type { FastifyPluginAsync } from 'fastify'
import { Type } from 'typebox'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

const HealthResponse = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  db: Type.Object({ ok: Type.Boolean(), latencyMs: Nullable(Type.Number()), error: Type.Optional(Type.String()) }),
  progressBatchLagMs: Type.Number(),
  offlineQueue: Type.Object({ backlog: Type.Integer() }),
  partitions: Type.Object({ from: Nullable(Type.String()), to: Nullable(Type.String()) }),
  workers: Type.Object({ lastRunAt: Nullable(Type.String()) }),
})

/** Health checks must answer fast even when the database hangs. */
const DB_CHECK_TIMEOUT_MS = 1500

declare module 'fastify' {
  interface FastifyInstance {
    /** Sum of the latest X-Client-Queue-Depth per user (edge plugin may replace). */
    offlineBacklog: () => number
  }
}

const healthRoutes: FastifyPluginAsync = async (app) => {
  if (!app.hasDecorator('offlineBacklog')) app.decorate('offlineBacklog', () => 0)

  app.get(
    '/api/health',
    { config: { public: true }, schema: { tags: ['health'], security: [], response: { 200: HealthResponse, 503: HealthResponse } } },
    async (_request, reply) => {
      const started = performance.now()
      let db: { ok: boolean; latencyMs: number | null; error?: string }
      let partitions: { from: string | null; to: string | null } = { from: null, to: null }
      let lastRunAt: string | null = null
      try {
        const [range] = await Promise.race([
          app.sql<{ from_day: string | null; to_day: string | null; last_run_at: Date | null }[]>`
            select from_day::text, to_day::text,
                   (select max(finished_at) from worker_runs) as last_run_at
            from partition_range('progress_events')`,
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), DB_CHECK_TIMEOUT_MS).unref()),
        ])
        db = { ok: true, latencyMs: Math.round((performance.now() - started) * 100) / 100 }
        partitions = { from: range?.from_day ?? null, to: range?.to_day ?? null }
        lastRunAt = range?.last_run_at?.toISOString() ?? null
      } catch (error) {
        db = { ok: false, latencyMs: null, error: (error as Error).message.slice(0, 200) }
      }
      reply.code(db.ok ? 200 : 503)
      if (!db.ok) reply.header('retry-after', '2')
      return {
        status: db.ok ? 'ok' : 'unavailable',
        db,
        progressBatchLagMs: Math.round(app.lag.smoothedMs * 100) / 100,
        offlineQueue: { backlog: app.offlineBacklog() },
        partitions,
        workers: { lastRunAt },
      }
    },
  )
}

export default healthRoutes
