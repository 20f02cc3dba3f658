// GET /api/v1/orgs/:orgId/rollups (contract section 6): an org's hourly or
// daily rollups, for its admins and instructors.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { canReadOrg } from '../../auth/principal.ts'
import { orgRollups, ROLLUP_READ_LIMITS } from '../../db/rollup-queries.ts'
import { Errors } from '../../errors.ts'
import { DayOrDateTime, EARLIEST_INSTANT_MS, ErrorResponse, Id, parseDayOrDateTime } from '../schemas/events.ts'

const HOUR_MS = 3600000
const DAY_MS = 24 * HOUR_MS
/** Widest range per request, and the default one, per granularity. */
const LIMITS = {
  hour: { maxMs: 31 * DAY_MS, defaultMs: DAY_MS },
  day: { maxMs: 366 * DAY_MS, defaultMs: 30 * DAY_MS },
} as const

const Params = Type.Object({ orgId: Id })
const Query = Type.Object(
  {
    from: Type.Optional(DayOrDateTime),
    to: Type.Optional(DayOrDateTime),
    granularity: Type.Optional(Type.Union([Type.Literal('hour'), Type.Literal('day')], { default: 'hour' })),
    courseId: Type.Optional(Id),
  },
  { additionalProperties: false },
)

const Counts = {
  activeLearners: Type.Integer({ description: 'distinct learners with any event' }),
  progressEvents: Type.Integer(),
  lessonsStarted: Type.Integer({ description: 'distinct lessons (learner, course, lesson) with a lesson_started event in the bucket' }),
  lessonsCompleted: Type.Integer({ description: 'distinct lessons (learner, course, lesson) with a lesson_completed event in the bucket' }),
  timeSpentMs: Type.Integer(),
  analyticsEvents: Type.Integer(),
  eventCounts: Type.Record(Type.String(), Type.Integer(), { description: 'analytics events by name' }),
}
const RollupsResponse = Type.Object({
  orgId: Type.String(),
  granularity: Type.String(),
  from: Type.String(),
  to: Type.String(),
  buckets: Type.Array(
    Type.Object({
      bucket: Type.String({ description: 'bucket start (UTC)' }),
      ...Counts,
      courses: Type.Array(Type.Object({ courseId: Type.String(), ...Counts })),
    }),
  ),
})

const rollupRoutes: FastifyPluginAsync = async (app) => {
  app.get(
    '/api/v1/orgs/:orgId/rollups',
    {
      schema: {
        tags: ['rollups'],
        params: Params,
        querystring: Query,
        response: { 200: RollupsResponse, '4xx': ErrorResponse },
      },
    },
    async (request) => {
      const { orgId } = request.params as Static<typeof Params>
      const query = request.query as Static<typeof Query>
      if (!canReadOrg(request.principal, orgId)) throw new Errors.FORBIDDEN(`an admin or instructor token of org ${orgId} is required`)
      const granularity = query.granularity ?? 'hour'
      const limits = LIMITS[granularity]
      const to = query.to ? parseDayOrDateTime(query.to) : new Date()
      if (!to) throw new Errors.INVALID_QUERY(`to names no real day or time: ${query.to}`)
      const from = query.from ? parseDayOrDateTime(query.from) : new Date(Math.max(to.getTime() - limits.defaultMs, EARLIEST_INSTANT_MS))
      if (!from) throw new Errors.INVALID_QUERY(`from names no real day or time: ${query.from}`)
      if (from >= to) throw new Errors.INVALID_QUERY('from must be before to')
      if (to.getTime() - from.getTime() > limits.maxMs) {
        throw new Errors.INVALID_QUERY(`${granularity === 'hour' ? 'an' : 'a'} ${granularity} range may span at most ${limits.maxMs / DAY_MS} days`)
      }
      const buckets = await orgRollups(app.sql, { orgId, granularity, from, to, ...(query.courseId ? { courseId: query.courseId } : {}) })
      if (!buckets) {
        throw new Errors.RANGE_TOO_LARGE(
          `more than ${ROLLUP_READ_LIMITS.counterRows} bucket rows (buckets times the org and each course) or ${ROLLUP_READ_LIMITS.nameRows} counts by event name; ask for a narrower range, granularity=day or one courseId`,
        )
      }
      return { orgId, granularity, from: from.toISOString(), to: to.toISOString(), buckets }
    },
  )
}

export default rollupRoutes
