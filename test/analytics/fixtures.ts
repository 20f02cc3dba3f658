// Hand-built analytics fixtures at fixed dates. Event partitions for those
// days are created in the test's own database (a clone), so time is fully
// deterministic: every computation gets "now" as a parameter.
import { randomUUID } from 'node:crypto'
import type { Sql } from '../../src/db/pool.ts'

/** Daily partitions of both event tables for every UTC day from `from` to `to` (YYYY-MM-DD). */
export async function createPartitions(sql: Sql, from: string, to: string): Promise<void> {
  const statements: string[] = []
  for (let day = new Date(`${from}T00:00:00Z`); day <= new Date(`${to}T00:00:00Z`); day = new Date(day.getTime() + 86400000)) {
    const next = new Date(day.getTime() + 86400000)
    const suffix = day.toISOString().slice(0, 10).replaceAll('-', '')
    for (const parent of ['progress_events', 'analytics_events']) {
      statements.push(`create table if not exists ${parent}_p${suffix} partition of ${parent}
        for values from ('${day.toISOString()}') to ('${next.toISOString()}')`)
    }
  }
  await sql.unsafe(statements.join(';\n'))
}

export interface ProgressFixture {
  user: string
  course: string
  lesson: string
  type: 'lesson_started' | 'lesson_progress' | 'lesson_completed'
  at: string
  ms?: number
  progress?: number
  score?: number
  skewMs?: number
}

/** Through the write path's own procedure, so progress rows are what ingestion makes. */
export async function insertProgress(sql: Sql, events: ProgressFixture[]): Promise<void> {
  const rows = events.map((event, i) => ({
    i,
    event_id: randomUUID(),
    occurred_at: event.at,
    user_id: event.user,
    org_hint: null,
    course_id: event.course,
    lesson_id: event.lesson,
    type: event.type,
    progress: event.progress ?? (event.type === 'lesson_progress' ? 50 : null),
    time_spent_ms: event.ms ?? 0,
    score: event.score ?? null,
    clock_skew_ms: event.skewMs ?? null,
  }))
  const [result] = await sql<{ outcomes: string }[]>`select upsert_progress_batch(${JSON.stringify(rows)}::text::json) as outcomes`
  if (result?.outcomes !== 'a'.repeat(rows.length)) throw new Error(`fixture events not all accepted: ${result?.outcomes}`)
}

export async function insertAnalytics(sql: Sql, events: { user: string; at: string; name?: string; skewMs?: number }[]): Promise<void> {
  const rows = events.map((event, i) => ({
    i,
    event_id: randomUUID(),
    occurred_at: event.at,
    user_id: event.user,
    org_hint: null,
    name: event.name ?? 'page.view',
    course_id: null,
    lesson_id: null,
    session_id: null,
    properties: {},
    clock_skew_ms: event.skewMs ?? null,
  }))
  const [result] = await sql<{ outcomes: string }[]>`select upsert_analytics_batch(${JSON.stringify(rows)}::text::json) as outcomes`
  if (result?.outcomes !== 'a'.repeat(rows.length)) throw new Error(`fixture events not all accepted: ${result?.outcomes}`)
}

export async function insertCourses(sql: Sql, orgId: string, courses: { courseId: string; lessonCount: number; category?: string }[]): Promise<void> {
  for (const course of courses) {
    await sql`insert into courses (org_id, course_id, lesson_count, category)
              values (${orgId}, ${course.courseId}, ${course.lessonCount}, ${course.category ?? null})`
  }
}

export async function assign(sql: Sql, orgId: string, role: 'learner' | 'instructor', pairs: [user: string, course: string][]): Promise<void> {
  for (const [userId, courseId] of pairs) {
    await sql`insert into assignments (org_id, user_id, course_id, role) values (${orgId}, ${userId}, ${courseId}, ${role})`
  }
}

/** The metrics fixture of docs/analytics.md ("Worked example"), org `org-a`, now = 2024-03-05T12:00Z (a Tuesday). */
export const NOW = '2024-03-05T12:00:00.000Z'

export async function seedMetricsFixture(sql: Sql): Promise<void> {
  await createPartitions(sql, '2024-02-10', '2024-03-06')
  await insertCourses(sql, 'org-a', [
    { courseId: 'c-math', lessonCount: 4, category: 'math' },
    { courseId: 'c-art', lessonCount: 1, category: 'art' },
    { courseId: 'c-empty', lessonCount: 0, category: 'misc' },
  ])
  await assign(sql, 'org-a', 'learner', [
    ['alice', 'c-math'], ['alice', 'c-art'], ['alice', 'c-empty'],
    ['bob', 'c-math'],
    ['carol', 'c-math'],
    ['dave', 'c-empty'],
  ])
  await assign(sql, 'org-a', 'instructor', [['ivan', 'c-math'], ['ivan', 'c-empty']])

  // alice: active Feb 27 - Mar 2 (a 5-day streak across the month boundary,
  // 2024 being a leap year), not on Mar 3, then Mar 4 and Mar 5.
  await insertProgress(sql, [
    { user: 'alice', course: 'c-math', lesson: 'm1', type: 'lesson_started', at: '2024-02-27T10:00:00Z', ms: 600000 },
    { user: 'alice', course: 'c-math', lesson: 'm1', type: 'lesson_completed', at: '2024-02-28T10:00:00Z', ms: 600000, score: 80 },
    { user: 'alice', course: 'c-math', lesson: 'm2', type: 'lesson_started', at: '2024-02-29T10:00:00Z', ms: 300000 },
    { user: 'alice', course: 'c-math', lesson: 'm2', type: 'lesson_completed', at: '2024-03-01T10:00:00Z', ms: 300000, score: 90 },
    { user: 'alice', course: 'c-art', lesson: 'a1', type: 'lesson_completed', at: '2024-03-02T10:00:00Z', ms: 1200000, score: 70 },
    { user: 'alice', course: 'c-math', lesson: 'm3', type: 'lesson_completed', at: '2024-03-04T10:00:00Z', ms: 600000 },
    { user: 'alice', course: 'c-math', lesson: 'm1', type: 'lesson_progress', at: '2024-03-04T12:00:00Z', ms: 60000, progress: 100 },
    // carol: two completions mid-February, then nothing.
    { user: 'carol', course: 'c-math', lesson: 'm1', type: 'lesson_completed', at: '2024-02-15T10:00:00Z', ms: 300000, score: 60 },
    { user: 'carol', course: 'c-math', lesson: 'm2', type: 'lesson_completed', at: '2024-02-16T10:00:00Z', ms: 300000, score: 40 },
  ])
  await insertAnalytics(sql, [
    { user: 'alice', at: '2024-03-02T11:00:00Z' },
    // Sent by a clock one hour slow: 23:30 on Mar 4 as sent, 00:30 on Mar 5 corrected.
    { user: 'alice', at: '2024-03-04T23:30:00Z', skewMs: 3600000 },
  ])
  // History older than the live window, as kept after its partitions were dropped.
  for (const day of ['2024-01-10', '2024-01-11', '2024-01-12']) {
    await sql`insert into learner_activity_days (org_id, user_id, day, events, active_ms, last_at)
              values ('org-a', 'alice', ${day}, 1, 100000, ${`${day}T09:00:00Z`})`
  }
}
