// Typed read queries for learner progress.
import type { Db } from './tables.ts'

export interface LessonProgress {
  lessonId: string
  status: 'started' | 'in_progress' | 'completed'
  progressPct: number
  bestScore: number | null
  timeSpentMs: number
  firstEventAt: string
  lastEventAt: string
  completedAt: string | null
}

export interface CourseProgress {
  orgId: string
  courseId: string
  lessonsStarted: number
  lessonsCompleted: number
  lessonCount: number | null
  progressPct: number | null
  completedAt: string | null
  timeSpentMs: number
  startedAt: string
  lastActivityAt: string
  lessons: LessonProgress[]
}

const iso = (value: Date | null) => (value === null ? null : value.toISOString())

/** A user's course and lesson progress, optionally within one org and/or course. */
export async function userProgress(
  db: Db,
  userId: string,
  filter: { orgId?: string; courseId?: string } = {},
): Promise<CourseProgress[]> {
  let courses = db.selectFrom('user_course_progress_view').selectAll().where('user_id', '=', userId)
  let lessons = db.selectFrom('user_lesson_progress').selectAll().where('user_id', '=', userId)
  if (filter.orgId !== undefined) {
    courses = courses.where('org_id', '=', filter.orgId)
    lessons = lessons.where('org_id', '=', filter.orgId)
  }
  if (filter.courseId !== undefined) {
    courses = courses.where('course_id', '=', filter.courseId)
    lessons = lessons.where('course_id', '=', filter.courseId)
  }
  const [courseRows, lessonRows] = await Promise.all([
    courses.orderBy('org_id').orderBy('course_id').execute(),
    lessons.orderBy('org_id').orderBy('course_id').orderBy('lesson_id').execute(),
  ])
  const byCourse = new Map<string, LessonProgress[]>()
  for (const row of lessonRows) {
    const key = `${row.org_id}\u001f${row.course_id}`
    const list = byCourse.get(key) ?? []
    list.push({
      lessonId: row.lesson_id,
      status: row.status,
      progressPct: row.progress_pct,
      bestScore: row.best_score === null ? null : Number(row.best_score),
      timeSpentMs: Number(row.time_spent_ms),
      firstEventAt: row.first_event_at.toISOString(),
      lastEventAt: row.last_event_at.toISOString(),
      completedAt: iso(row.completed_at),
    })
    byCourse.set(key, list)
  }
  return courseRows.map((row) => ({
    orgId: row.org_id,
    courseId: row.course_id,
    lessonsStarted: row.lessons_started,
    lessonsCompleted: row.lessons_completed,
    lessonCount: row.lesson_count,
    progressPct: row.progress_pct === null ? null : Number(row.progress_pct),
    completedAt: iso(row.completed_at),
    timeSpentMs: Number(row.time_spent_ms),
    startedAt: row.started_at.toISOString(),
    lastActivityAt: row.last_activity_at.toISOString(),
    lessons: byCourse.get(`${row.org_id}\u001f${row.course_id}`) ?? [],
  }))
}
