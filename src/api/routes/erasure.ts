// DELETE /api/v1/orgs/:orgId/users/:userId (contract sections 5 and 6): an
// org's admin (or service) asks for a learner's erasure; a worker carries it
// out (src/workers/erasure.ts) and the answer is the job to follow.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { canAdministerOrg } from '../../auth/principal.ts'
import { Errors } from '../../errors.ts'
import { ERASURE_JOB, type ErasureRequest } from '../../workers/erasure.ts'
import { ErrorResponse, Id } from '../schemas/events.ts'

const Params = Type.Object({ orgId: Id, userId: Id })

const erasureRoutes: FastifyPluginAsync = async (app) => {
  app.delete(
    '/api/v1/orgs/:orgId/users/:userId',
    {
      schema: {
        tags: ['admin'],
        params: Params,
        response: { 202: Type.Object({ jobId: Type.String() }), '4xx': ErrorResponse },
      },
    },
    async (request, reply) => {
      const { orgId, userId } = request.params as Static<typeof Params>
      const { principal } = request
      if (!canAdministerOrg(principal, orgId)) throw new Errors.FORBIDDEN(`an admin or service token of org ${orgId} is required`)
      const data: ErasureRequest = {
        orgId,
        userId,
        requestedBy: { userId: principal.userId, role: principal.role, ...(principal.orgId ? { orgId: principal.orgId } : {}) },
        requestedAt: new Date().toISOString(),
      }
      const jobId = await app.jobs.send(ERASURE_JOB, data)
      return reply.code(202).send({ jobId })
    },
  )
}

export default erasureRoutes
