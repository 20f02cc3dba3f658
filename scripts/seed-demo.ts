// npm run seed:demo -- --learners N --courses C
// Org `demo`, courses course-1..C, learners learner-1..N, every learner
// assigned to every course (what the k6 scenarios expect). Idempotent.
import { loadConfigOrExit } from '../src/config.ts'
import { locateDatabase } from '../src/db/database.ts'
import { createPool, type Sql } from '../src/db/pool.ts'
import { readySchemaOrExit } from '../src/db/ready.ts'
import { exitWithUsage, parseCliArgs } from './cli-args.ts'

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

if (import.meta.filename === process.argv[1]) {
  const usage = 'usage: npm run seed:demo -- --learners N --courses C (positive integers)'
  const { values } = parseCliArgs(usage, { options: { learners: { type: 'string', default: '100' }, courses: { type: 'string', default: '4' } } })
  // Plain digits: Number() would take 1e1 or ' 3'.
  const [learners, courses] = [values.learners!, values.courses!].map((text) => (/^\d+$/.test(text) ? Number(text) : 0)) as [number, number]
  if (learners < 1 || courses < 1) exitWithUsage(usage)
  const config = loadConfigOrExit({ tokens: false })
  const database = await locateDatabase(config, console.log)
  const sql = createPool(database.url, { max: 1, applicationName: 'seed-demo' })
  await readySchemaOrExit(sql, database, config, { migrate: true })
  try {
    const { assignments } = await seedDemo(sql, { learners, courses })
    console.log(`seeded org ${DEMO_ORG}: ${courses} courses, ${learners} learners, ${assignments} new assignments`)
  } finally {
    await sql.end()
    await database.release()
  }
}
