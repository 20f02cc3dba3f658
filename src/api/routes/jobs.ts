// GET /api/v1/jobs/:jobId: the state of a job, to the one who asked for it (a
// manual analytics refresh, a learner erasure). Every other id is 404: unknown,
// or not ours to show.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { isRefreshRequester } from '../../analytics/access.ts'
import type { Principal } from '../../auth/principal.ts'
import { findJobRequest } from '../../analytics/store.ts'
import { Errors } from '../../errors.ts'
import { isRequester } from '../../jobs/requester.ts'
import { ErrorResponse, Id, NoQuery } from '../schemas/events.ts'

const JobParams = Type.Object({ jobId: Id })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

const JobResponse = Type.Object({
  state: Type.Union(
    ['created', 'retry', 'active', 'completed', 'cancelled', 'failed'].map((state) => Type.Literal(state)),
  ),
  startedAt: Nullable(Type.String({ format: 'date-time' })),
  completedAt: Nullable(Type.String({ format: 'date-time' })),
  error: Type.Optional(Type.String()),
})

const jobRoutes: FastifyPluginAsync = async (app) => {
  /** The job, if the principal asked for it: refreshes are recorded in job_requests, erasures name their requester in their data. */
  async function requestersJob(jobId: string, principal: Principal) {
    const refresh = await findJobRequest(app.sql, jobId)
    if (refresh) return isRefreshRequester(principal, refresh) ? app.jobs.get(refresh.queue, jobId) : null
    const job = await app.jobs.find(jobId)
    return job && isRequester(job.data, principal) ? job : null
  }

  app.get(
    '/api/v1/jobs/:jobId',
    { schema: { tags: ['jobs'], params: JobParams, querystring: NoQuery, response: { 200: JobResponse, '4xx': ErrorResponse } } },
    async (request) => {
      const { jobId } = request.params as Static<typeof JobParams>
      const status = await requestersJob(jobId, request.principal)
      if (!status) throw new Errors.NOT_FOUND(`job ${jobId}`)
      return {
        state: status.state,
        startedAt: status.startedAt,
        completedAt: status.completedAt,
        ...(status.error !== undefined ? { error: status.error } : {}),
      }
    },
  )
}

export default jobRoutes
