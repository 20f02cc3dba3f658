// Row types of the tables and views the read queries use (kysely).
import { Kysely } from 'kysely'
import { PostgresJSDialect } from 'kysely-postgres-js'
import type { Sql } from './pool.ts'

export interface CoursesTable {
  org_id: string
  course_id: string
  lesson_count: number
  category: string | null
  updated_at: Date
}

export interface AssignmentsTable {
  org_id: string
  user_id: string
  course_id: string
  role: 'learner' | 'instructor'
  assigned_at: Date
}

export interface UserLessonProgressTable {
  org_id: string
  user_id: string
  course_id: string
  lesson_id: string
  status: 'started' | 'in_progress' | 'completed'
  progress_pct: number
  best_score: string | null
  time_spent_ms: number
  first_event_at: Date
  last_event_at: Date
  completed_at: Date | null
  event_count: number
  updated_at: Date
}

export interface UserCourseProgressView {
  org_id: string
  user_id: string
  course_id: string
  lessons_started: number
  lessons_completed: number
  lesson_count: number | null
  progress_pct: string | null
  completed_at: Date | null
  time_spent_ms: number
  started_at: Date
  last_activity_at: Date
  updated_at: Date
}

export interface Database {
  courses: CoursesTable
  assignments: AssignmentsTable
  user_lesson_progress: UserLessonProgressTable
  user_course_progress_view: UserCourseProgressView
}

export type Db = Kysely<Database>

/** A kysely instance over an existing postgres.js pool (it does not own it). */
export function createDb(sql: Sql): Db {
  return new Kysely<Database>({ dialect: new PostgresJSDialect({ postgres: sql }) })
}
