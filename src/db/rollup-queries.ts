// Reads of the org rollups (written by the rollup worker, sql/000010_rollups.sql).
import type { Sql } from './pool.ts'

export type Granularity = 'hour' | 'day'

export interface RollupMetrics {
  activeLearners: number
  progressEvents: number
  lessonsStarted: number
  lessonsCompleted: number
  timeSpentMs: number
  analyticsEvents: number
  /** Analytics events by name. */
  eventCounts: Record<string, number>
}

export interface RollupBucket extends RollupMetrics {
  bucket: string
  courses: (RollupMetrics & { courseId: string })[]
}

interface CounterRow {
  bucket: Date
  course_id: string
  active_learners: number
  progress_events: number
  lessons_started: number
  lessons_completed: number
  time_spent_ms: number
  analytics_events: number
}

/**
 * At most this many rows a read: one request builds and serialises its whole
 * answer on the event loop, and 75,000 rows (31 days of hours for an org of
 * 100 courses) came to 15 MB and held every other request up for 2.5 s.
 */
export const ROLLUP_READ_LIMITS = { counterRows: 10000, nameRows: 50000 } as const

/**
 * An org's rollups for buckets starting in [from truncated to the
 * granularity, to), oldest first; buckets without activity are absent. With
 * `courseId`, only that course's rows (the org totals stay org-wide).
 * Undefined when the range holds more rows than ROLLUP_READ_LIMITS.
 */
export async function orgRollups(
  sql: Sql,
  query: { orgId: string; granularity: Granularity; from: Date; to: Date; courseId?: string },
): Promise<RollupBucket[] | undefined> {
  // A fresh fragment per query: postgres.js fragments are not shared between queries.
  const range = () => sql`org_id = ${query.orgId} and granularity = ${query.granularity}
    and bucket >= date_trunc(${query.granularity}, ${query.from}::timestamptz, 'UTC') and bucket < ${query.to}::timestamptz
    ${query.courseId === undefined ? sql`` : sql`and course_id in ('', ${query.courseId})`}`
  const [counters, names] = await Promise.all([
    sql<CounterRow[]>`
      select bucket, course_id, active_learners, progress_events, lessons_started, lessons_completed,
             time_spent_ms, analytics_events
      from org_rollups where ${range()}
      order by bucket, course_id
      limit ${ROLLUP_READ_LIMITS.counterRows + 1}`,
    sql<{ bucket: Date; course_id: string; name: string; events: number }[]>`
      select bucket, course_id, name, events from org_rollup_event_names where ${range()}
      order by bucket, course_id, name
      limit ${ROLLUP_READ_LIMITS.nameRows + 1}`,
  ])
  if (counters.length > ROLLUP_READ_LIMITS.counterRows || names.length > ROLLUP_READ_LIMITS.nameRows) return undefined
  const key = (bucket: Date, courseId: string) => `${bucket.toISOString()}\u001f${courseId}`
  const eventCounts = new Map<string, Record<string, number>>()
  for (const row of names) {
    const counts = eventCounts.get(key(row.bucket, row.course_id)) ?? {}
    counts[row.name] = Number(row.events)
    eventCounts.set(key(row.bucket, row.course_id), counts)
  }
  const buckets = new Map<string, RollupBucket>()
  for (const row of counters) {
    const metrics: RollupMetrics = {
      activeLearners: row.active_learners,
      progressEvents: Number(row.progress_events),
      lessonsStarted: Number(row.lessons_started),
      lessonsCompleted: Number(row.lessons_completed),
      timeSpentMs: Number(row.time_spent_ms),
      analyticsEvents: Number(row.analytics_events),
      eventCounts: eventCounts.get(key(row.bucket, row.course_id)) ?? {},
    }
    const start = row.bucket.toISOString()
    const bucket = buckets.get(start) ?? { bucket: start, ...emptyMetrics(), courses: [] }
    if (row.course_id === '') Object.assign(bucket, metrics)
    else bucket.courses.push({ courseId: row.course_id, ...metrics })
    buckets.set(start, bucket)
  }
  return [...buckets.values()]
}

function emptyMetrics(): RollupMetrics {
  return { activeLearners: 0, progressEvents: 0, lessonsStarted: 0, lessonsCompleted: 0, timeSpentMs: 0, analyticsEvents: 0, eventCounts: {} }
}
