// Org administration: courses and assignments (contract section 6). An
// assignment links a user and course to an org, so its arrival replays that
// user's deferred events.
import type { FastifyPluginAsync } from 'fastify'
import { Type, type Static } from 'typebox'
import { canAdministerOrg } from '../../auth/principal.ts'
import { Errors } from '../../errors.ts'
import { ErrorResponse, Id } from '../schemas/events.ts'

const OrgParams = Type.Object({ orgId: Id })

const CoursesBody = Type.Object({
  courses: Type.Array(
    Type.Object(
      {
        courseId: Id,
        lessonCount: Type.Integer({ minimum: 0, maximum: 100000 }),
        category: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
      },
      { additionalProperties: false },
    ),
    { minItems: 1, maxItems: 1000 },
  ),
}, { additionalProperties: false })

const AssignmentsBody = Type.Object({
  assignments: Type.Array(
    Type.Object(
      {
        userId: Id,
        courseId: Id,
        role: Type.Optional(Type.Union([Type.Literal('learner'), Type.Literal('instructor')])),
      },
      { additionalProperties: false },
    ),
    { minItems: 1, maxItems: 5000 },
  ),
}, { additionalProperties: false })

const Replayed = Type.Object({ progress: Type.Integer(), analytics: Type.Integer() })

/** One item per key, the last one given: an upsert may not touch a row twice. */
function lastWins<Item>(items: Item[], key: (item: Item) => string): Item[] {
  return [...new Map(items.map((item) => [key(item), item])).values()]
}

/** Dead letters per stream per replay call (the old default of replay_dead_letter). */
const REPLAY_CHUNK = 1000

/** Replays at most this many rounds inline; the worker's schedule does the rest. */
const MAX_INLINE_REPLAY_ROUNDS = 10

export interface AdminRoutesOptions {
  /** RETENTION_DAYS: a replayed dead letter older than this is discarded as too_old. */
  retentionDays: number
}

const adminRoutes: FastifyPluginAsync<AdminRoutesOptions> = async (app, options) => {
  const { retentionDays } = options
  const requireAdmin = (principal: Parameters<typeof canAdministerOrg>[0], orgId: string) => {
    if (!canAdministerOrg(principal, orgId)) throw new Errors.FORBIDDEN(`an admin or service token of org ${orgId} is required`)
  }

  app.put(
    '/api/v1/orgs/:orgId/courses',
    {
      schema: {
        tags: ['admin'],
        params: OrgParams,
        body: CoursesBody,
        response: { 200: Type.Object({ upserted: Type.Integer() }), '4xx': ErrorResponse },
      },
    },
    async (request) => {
      const { orgId } = request.params as Static<typeof OrgParams>
      requireAdmin(request.principal, orgId)
      const { courses } = request.body as Static<typeof CoursesBody>
      const result = await app.sql`
        insert into courses as c (org_id, course_id, lesson_count, category)
        select ${orgId}, x."courseId", x."lessonCount", x.category
        from json_to_recordset(${JSON.stringify(lastWins(courses, (c) => c.courseId))}::text::json)
          as x("courseId" text, "lessonCount" integer, category text)
        order by x."courseId"
        on conflict (org_id, course_id) do update set
          lesson_count = excluded.lesson_count, category = excluded.category, updated_at = now()`
      return { upserted: result.count }
    },
  )

  app.put(
    '/api/v1/orgs/:orgId/assignments',
    {
      schema: {
        tags: ['admin'],
        params: OrgParams,
        body: AssignmentsBody,
        response: { 200: Type.Object({ upserted: Type.Integer(), replayed: Replayed }), '4xx': ErrorResponse },
      },
    },
    async (request) => {
      const { orgId } = request.params as Static<typeof OrgParams>
      requireAdmin(request.principal, orgId)
      const { assignments } = request.body as Static<typeof AssignmentsBody>
      const unique = lastWins(assignments, (a) => `${a.userId}\u001f${a.courseId}`)
      // Dated in commit order (sql/000047): an event without a token org goes to the oldest.
      const [{ upserted }] = await app.sql<[{ upserted: number }]>`
        select upsert_assignments(${orgId}, ${JSON.stringify(unique)}::text::json) as upserted`
      const users = [...new Set(assignments.map((a) => a.userId))]
      const replayed = { progress: 0, analytics: 0 }
      let tooOld = 0
      // The assignments are committed: whatever the replay meets, the answer is
      // theirs. A replay that fails leaves its chunk in the dead-letter table
      // (its transaction rolled back) for the worker's replay job.
      try {
        for (let round = 0; round < MAX_INLINE_REPLAY_ROUNDS; round++) {
          const rows = await app.sql<{ stream: 'progress' | 'analytics'; replayed: number; too_old: number }[]>`
            select stream, replayed, too_old
            from replay_dead_letter(${users}::text[], ${REPLAY_CHUNK}::int, ${retentionDays}::int)`
          for (const row of rows) {
            replayed[row.stream] += row.replayed
            tooOld += row.too_old
          }
          if (rows.length === 0) break
        }
      } catch (error) {
        request.log.error({ err: error, orgId, users: users.length }, 'dead-letter replay after an assignment upsert failed; left to the replay job')
      }
      if (tooOld > 0) {
        request.log.warn({ orgId, tooOld, retentionDays }, 'dead letters older than RETENTION_DAYS (or without a partition) discarded as too_old')
      }
      return { upserted, replayed }
    },
  )
}

export default adminRoutes
