// npm run seed:demo -- --learners N --courses C: the demo data of
// src/db/demo.ts (what the k6 scenarios expect). Idempotent.
import { loadConfigOrExit } from '../src/config.ts'
import { counted } from '../src/counted.ts'
import { locateDatabase } from '../src/db/database.ts'
import { DEMO_ORG, seedDemo } from '../src/db/demo.ts'
import { createPool } from '../src/db/pool.ts'
import { readySchemaOrExit } from '../src/db/ready.ts'
import { exitWithUsage, parseCliArgs } from './cli-args.ts'

const usage = 'usage: npm run seed:demo [-- --learners N --courses C] (positive integers; default 100 learners, 4 courses)'
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
  console.log(`seeded org ${DEMO_ORG}: ${counted(courses, 'course')}, ${counted(learners, 'learner')}, ${counted(assignments, 'new assignment')}`)
} finally {
  await sql.end()
  await database.release()
}
