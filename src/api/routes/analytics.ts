// Learner analytics (contract section 6, docs/analytics.md): the cached read
// with its staleness states, the rate-limited manual refresh, and the weekly
// pattern-evolution series.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { resolveSubject } from '../../analytics/access.ts'
import { claimRefresh, dropRefresh, patternEvolution, recordRefreshJob } from '../../analytics/store.ts'
import { ANALYTICS_QUEUES } from '../../analytics/types.ts'
import { counted } from '../../counted.ts'
import { Errors } from '../../errors.ts'
import { ErrorResponse, Id, Weeks } from '../schemas/events.ts'

const Role = Type.Union([Type.Literal('learner'), Type.Literal('instructor'), Type.Literal('admin')], { default: 'learner' })
const UserParams = Type.Object({ userId: Id })
const RoleQuery = Type.Object(
  {
    role: Type.Optional(Role),
    // For a token without an org claim whose user is in several orgs.
    orgId: Type.Optional(Id),
  },
  { additionalProperties: false },
)
const EvolutionQuery = Type.Object(
  { weeks: Type.Optional(Weeks), orgId: Type.Optional(Id) },
  { additionalProperties: false },
)

const AnalyticsResponse = Type.Object({
  status: Type.Union([Type.Literal('fresh'), Type.Literal('refreshing'), Type.Literal('calculating')]),
  data: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  updatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  ageHours: Type.Union([Type.Number(), Type.Null()]),
})

const Week = Type.Object({
  weekStart: Type.String({ format: 'date' }),
  activeDays: Type.Integer(),
  events: Type.Integer(),
  timeSpentMs: Type.Integer(),
  lessonsCompleted: Type.Integer(),
})
const EvolutionResponse = Type.Object({ userId: Type.String(), orgId: Type.String(), weeks: Type.Array(Week) })

export interface AnalyticsRoutesOptions {
  refreshLimit: { max: number; windowMs: number }
}

const analyticsRoutes: FastifyPluginAsync<AnalyticsRoutesOptions> = async (app, options) => {
  app.get(
    '/api/v1/analytics/learner/:userId',
    {
      schema: {
        tags: ['analytics'],
        params: UserParams,
        querystring: RoleQuery,
        response: { 200: AnalyticsResponse, '4xx': ErrorResponse },
      },
    },
    async (request) => {
      const { userId } = request.params as Static<typeof UserParams>
      const { role = 'learner', orgId } = request.query as Static<typeof RoleQuery>
      const key = await resolveSubject(app.sql, request.principal, userId, role, 'read', orgId)
      return app.analytics.read(key)
    },
  )

  app.post(
    '/api/v1/analytics/learner/:userId/refresh',
    {
      schema: {
        tags: ['analytics'],
        params: UserParams,
        querystring: RoleQuery,
        response: { 202: Type.Object({ jobId: Type.String() }), 429: { ...ErrorResponse, description: 'RATE_LIMITED: past REFRESH_LIMIT' }, '4xx': ErrorResponse },
      },
    },
    async (request, reply) => {
      const { userId } = request.params as Static<typeof UserParams>
      const { role = 'learner', orgId } = request.query as Static<typeof RoleQuery>
      const key = await resolveSubject(app.sql, request.principal, userId, role, 'refresh', orgId)
      const claim = await claimRefresh(app.sql, request.principal.userId, key, options.refreshLimit)
      if ('retryAfterMs' in claim) {
        const seconds = Math.max(1, Math.ceil(claim.retryAfterMs / 1000))
        reply.header('retry-after', String(seconds))
        throw new Errors.RATE_LIMITED(counted(seconds, 'second'))
      }
      let jobId: string
      try {
        jobId = await app.jobs.send(ANALYTICS_QUEUES.recompute, key)
      } catch (error) {
        await dropRefresh(app.sql, claim.refreshId).catch(() => {})
        throw error
      }
      await recordRefreshJob(app.sql, claim.refreshId, ANALYTICS_QUEUES.recompute, jobId)
      return reply.code(202).send({ jobId })
    },
  )

  app.get(
    '/api/v1/analytics/learner/:userId/patterns/evolution',
    {
      schema: {
        tags: ['analytics'],
        params: UserParams,
        querystring: EvolutionQuery,
        response: { 200: EvolutionResponse, '4xx': ErrorResponse },
      },
    },
    async (request) => {
      const { userId } = request.params as Static<typeof UserParams>
      const { weeks = '12', orgId } = request.query as Static<typeof EvolutionQuery>
      const key = await resolveSubject(app.sql, request.principal, userId, 'learner', 'read', orgId)
      return { userId, orgId: key.orgId, weeks: await patternEvolution(app.sql, key.orgId, userId, Number(weeks), new Date()) }
    },
  )
}

export default analyticsRoutes
