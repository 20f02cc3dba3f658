// GET /api/v1/jobs/:jobId: the state of a job, to the one who asked for it (a
// manual analytics refresh, a learner erasure). Every other id is 404: unknown,
// or not ours to show.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { isRefreshRequester } from '../../analytics/access.ts'
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
  app.get(
    '/api/v1/jobs/:jobId',
    { schema: { tags: ['jobs'], params: JobParams, querystring: NoQuery, response: { 200: JobResponse, '4xx': ErrorResponse } } },
    async (request) => {
      const { jobId } = request.params as Static<typeof JobParams>
      const requested = await findJobRequest(app.sql, jobId)
      // Jobs other routes enqueue (learner erasure) name their requester in their data.
      const status = requested
        ? isRefreshRequester(request.principal, requested) ? await app.jobs.get(requested.queue, jobId) : null
        : await app.jobs.find(jobId).then((job) => (job && isRequester(job.data, request.principal) ? job : null))
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
