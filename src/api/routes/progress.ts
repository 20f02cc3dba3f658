// Progress reads (contract section 6): a learner's own, or any learner's for
// an admin or instructor of the same org.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { canReadOrg } from '../../auth/principal.ts'
import { userProgress } from '../../db/progress-queries.ts'
import { Errors } from '../../errors.ts'
import { ErrorResponse, Id } from '../schemas/events.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

const LessonProgress = Type.Object({
  lessonId: Type.String(),
  status: Type.String(),
  progressPct: Type.Number(),
  bestScore: Nullable(Type.Number()),
  timeSpentMs: Type.Number(),
  firstEventAt: Type.String(),
  lastEventAt: Type.String(),
  completedAt: Nullable(Type.String()),
})

const CourseProgress = Type.Object({
  orgId: Type.String(),
  courseId: Type.String(),
  lessonsStarted: Type.Integer(),
  lessonsCompleted: Type.Integer(),
  lessonCount: Nullable(Type.Integer()),
  progressPct: Nullable(Type.Number()),
  completedAt: Nullable(Type.String()),
  timeSpentMs: Type.Number(),
  startedAt: Type.String(),
  lastActivityAt: Type.String(),
  lessons: Type.Array(LessonProgress),
})

const ProgressResponse = Type.Object({ userId: Type.String(), courses: Type.Array(CourseProgress) })
const CourseQuery = Type.Object({ courseId: Type.Optional(Id) }, { additionalProperties: false })
const UserParams = Type.Object({ orgId: Id, userId: Id })

const progressRoutes: FastifyPluginAsync = async (app) => {
  app.get(
    '/api/v1/progress/me',
    { schema: { tags: ['progress'], querystring: CourseQuery, response: { 200: ProgressResponse, '4xx': ErrorResponse } } },
    async (request) => {
      const { courseId } = request.query as Static<typeof CourseQuery>
      const { userId, orgId } = request.principal
      const courses = await userProgress(app.db, userId, { ...(orgId ? { orgId } : {}), ...(courseId ? { courseId } : {}) })
      return { userId, courses }
    },
  )

  app.get(
    '/api/v1/orgs/:orgId/users/:userId/progress',
    {
      schema: {
        tags: ['progress'],
        params: UserParams,
        querystring: CourseQuery,
        response: { 200: ProgressResponse, '4xx': ErrorResponse },
      },
    },
    async (request) => {
      const { orgId, userId } = request.params as Static<typeof UserParams>
      const { courseId } = request.query as Static<typeof CourseQuery>
      if (!canReadOrg(request.principal, orgId)) throw new Errors.FORBIDDEN(`an admin or instructor token of org ${orgId} is required`)
      const courses = await userProgress(app.db, userId, { orgId, ...(courseId ? { courseId } : {}) })
      return { userId, courses }
    },
  )
}

export default progressRoutes
