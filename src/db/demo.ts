// The demo data: org `demo`, courses course-1..C (10 lessons each, which the
// k6 scenarios walk), learners learner-1..N, every learner assigned to every
// course. `npm start` makes its first course and learner; seed:demo the rest.
import type { Sql } from './pool.ts'

export const DEMO_ORG = 'demo'
export const DEMO_LESSONS_PER_COURSE = 10

export async function seedDemo(sql: Sql, options: { learners: number; courses: number }): Promise<{ assignments: number }> {
  await sql`
    insert into courses (org_id, course_id, lesson_count, category)
    select ${DEMO_ORG}, 'course-' || c, ${DEMO_LESSONS_PER_COURSE}, (array['math', 'science', 'language', 'history'])[1 + (c - 1) % 4]
    from generate_series(1, ${options.courses}::int) c
    on conflict do nothing`
  const result = await sql`
    insert into assignments (org_id, user_id, course_id)
    select ${DEMO_ORG}, 'learner-' || l, 'course-' || c
    from generate_series(1, ${options.learners}::int) l, generate_series(1, ${options.courses}::int) c
    on conflict do nothing`
  return { assignments: result.count }
}
