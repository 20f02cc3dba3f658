// GET /api/v1/orgs/:orgId/cohorts: the org's learner archetypes, served from
// what the workers stored (src/analytics/cohorts.ts). Missing or stale
// (older than STALE_AFTER_MS) enqueues one discovery, as the learner read does.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { canReadOrg } from '../../auth/principal.ts'
import { claimCohorts, readCohorts, releaseCohorts } from '../../analytics/store.ts'
import { ANALYTICS_QUEUES } from '../../analytics/types.ts'
import { Errors } from '../../errors.ts'
import { ErrorResponse, Id, NoQuery } from '../schemas/events.ts'

const OrgParams = Type.Object({ orgId: Id })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

const Archetype = Type.Object({
  cluster: Type.Integer(),
  name: Type.String(),
  count: Type.Integer(),
  centroid: Type.Object({ velocity: Type.Number(), affinity: Type.Number(), retention: Type.Number() }),
})

const CohortsResponse = Type.Object({
  status: Type.Union([Type.Literal('fresh'), Type.Literal('refreshing'), Type.Literal('calculating')]),
  orgId: Type.String(),
  updatedAt: Nullable(Type.String({ format: 'date-time' })),
  ageHours: Nullable(Type.Number()),
  learners: Type.Integer(),
  k: Type.Integer(),
  method: Nullable(Type.String()),
  silhouette: Nullable(Type.Number()),
  archetypes: Type.Array(Archetype),
})

/** A discovery job is allowed this long before another may be enqueued (the job's expiry). */
const COHORT_LEASE_MS = 3600000

export interface CohortRoutesOptions {
  staleAfterMs: number
}

const cohortRoutes: FastifyPluginAsync<CohortRoutesOptions> = async (app, options) => {
  const enqueueOnce = async (orgId: string) => {
    if (!(await claimCohorts(app.sql, orgId, COHORT_LEASE_MS))) return
    try {
      await app.jobs.send(ANALYTICS_QUEUES.cohorts, { orgId })
    } catch (error) {
      app.log.warn({ err: error, orgId }, 'could not enqueue cohort discovery')
      await releaseCohorts(app.sql, orgId).catch(() => {})
    }
  }

  app.get(
    '/api/v1/orgs/:orgId/cohorts',
    { schema: { tags: ['analytics'], params: OrgParams, querystring: NoQuery, response: { 200: CohortsResponse, '4xx': ErrorResponse } } },
    async (request) => {
      const { orgId } = request.params as Static<typeof OrgParams>
      if (!canReadOrg(request.principal, orgId)) throw new Errors.FORBIDDEN(`an admin or instructor token of org ${orgId} is required`)
      const stored = await readCohorts(app.sql, orgId)
      if (!stored?.computedAt) {
        await enqueueOnce(orgId)
        return { status: 'calculating', orgId, updatedAt: null, ageHours: null, learners: 0, k: 0, method: null, silhouette: null, archetypes: [] }
      }
      const ageMs = Math.max(0, Date.now() - stored.computedAt.getTime())
      const stale = ageMs > options.staleAfterMs || !stored.current
      if (stale) await enqueueOnce(orgId)
      return {
        status: stale ? 'refreshing' : 'fresh',
        orgId,
        updatedAt: stored.computedAt.toISOString(),
        ageHours: Math.round((ageMs / 3600000) * 100) / 100,
        learners: stored.learners ?? 0,
        k: stored.k ?? 0,
        method: stored.method,
        silhouette: stored.silhouette === null ? null : Math.round(stored.silhouette * 10000) / 10000,
        archetypes: (stored.archetypes ?? []) as Static<typeof Archetype>[],
      }
    },
  )
}

export default cohortRoutes
