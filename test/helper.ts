// Test harness: every test file gets its own database, cloned from a template
// that scripts/test.ts migrated once per run, and an app torn down per test.
import { randomBytes, randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp, type AppConfig } from '../src/api/app.ts'
import { mintToken, type MintOptions } from '../src/auth/tokens.ts'
import { ensurePartitions } from '../src/db/migrate.ts'
import { createPool, type Sql } from '../src/db/pool.ts'
import type { ProgressRow } from '../src/ingest/validate.ts'

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256!'

export const testConfig: AppConfig = {
  MAX_BATCH_EVENTS: 100,
  MAX_BATCH_BYTES: 262144,
  RETENTION_DAYS: 30,
  MAX_FUTURE_MS: 86400000,
  LAG_SLO_MS: 250,
  AUTH_JWT_SECRET: TEST_SECRET,
  DB_POOL_MAX: 10,
  // High so that tests of other features are never throttled; edge tests set 5.
  RATE_LIMIT_BATCHES_PER_SECOND: 100000,
  GROUP_COMMIT: true,
  LOG_LEVEL: (process.env.TEST_LOG_LEVEL as AppConfig['LOG_LEVEL'] | undefined) ?? 'silent',
}

function requireEnv(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set: run tests with \`npm test\` (scripts/test.ts prepares the database)`)
  return value
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** A fresh, migrated database for this test, dropped when it ends. */
export async function testDatabase(t: Test): Promise<string> {
  const url = await createTestDatabase(t, requireEnv('TEST_TEMPLATE_DB'))
  if (process.env.TEST_TEMPLATE_DAY !== utcDay()) await alignPartitionsToToday(url)
  return url
}

const utcDay = () => new Date().toISOString().slice(0, 10)

/**
 * The template's partitions run from 30 days before the day it was migrated
 * to 7 after. A run that passes midnight UTC (tests last about 13 minutes)
 * clones it a day behind: shift the copy to today as migrate would have made
 * it, dropping the oldest day, which is empty.
 */
async function alignPartitionsToToday(url: string): Promise<void> {
  const sql = createPool(url, { max: 1 })
  try {
    await ensurePartitions(sql, testConfig.RETENTION_DAYS, 7)
    const stale = await sql<{ partition_name: string }[]>`
      select partition_name from retention_partitions((now() at time zone 'UTC')::date - ${testConfig.RETENTION_DAYS}::int)`
    for (const { partition_name } of stale) await sql`drop table ${sql(partition_name)}`
  } finally {
    await sql.end()
  }
}

/** A fresh database with no schema at all (for migration tests). */
export function emptyDatabase(t: Test): Promise<string> {
  return createTestDatabase(t, 'template0')
}

async function createTestDatabase(t: Test, template: string): Promise<string> {
  const adminUrl = requireEnv('TEST_ADMIN_URL')
  const name = `test_${randomBytes(6).toString('hex')}`
  const admin = createPool(adminUrl, { max: 1 })
  await admin.unsafe(`create database "${name}" template "${template}"`)
  await admin.end()
  t.teardown(async () => {
    const admin = createPool(adminUrl, { max: 1 })
    await admin.unsafe(`drop database if exists "${name}" with (force)`)
    await admin.end()
  })
  return withDatabase(adminUrl, name)
}

/**
 * Waits past the next multiple of `period` (UTC) when fewer than `margin` ms
 * remain before it: for a test whose expectations and the code under test read
 * the clock apart (the day's partitions, the next cron occurrence).
 */
export async function startClearOf(period: number, margin: number): Promise<void> {
  const remaining = period - (Date.now() % period)
  if (remaining < margin) await new Promise((resolve) => setTimeout(resolve, remaining + 1000))
}

/** For tests whose expected partitions or days are counted from today, as the code under test counts them. */
export const startClearOfMidnight = () => startClearOf(86_400_000, 60_000)

/** A pool on the test's database, closed when the test ends. */
export function testPool(t: Test, url: string, max = 4): Sql {
  const sql = createPool(url, { max, applicationName: 'test' })
  t.teardown(() => sql.end({ timeout: 5 }))
  return sql
}

export interface Harness {
  app: FastifyInstance
  sql: Sql
  url: string
  token(userId: string, options?: Omit<MintOptions, 'userId'>): Promise<string>
}

/** Builds the app on a fresh database; closes it (and the database) after the test. */
export async function build(t: Test, overrides: Partial<AppConfig> = {}): Promise<Harness> {
  const url = await testDatabase(t)
  const app = await buildApp({ config: { ...testConfig, ...overrides }, databaseUrl: url })
  await app.ready()
  t.teardown(() => app.close())
  const sql = testPool(t, url)
  return { app, sql, url, token: (userId, options = {}) => mintToken(TEST_SECRET, { userId, ...options }) }
}

/** Courses and learner assignments in one org, straight into the tables. */
export async function seedOrg(
  sql: Sql,
  orgId: string,
  courses: { courseId: string; lessonCount: number }[],
  learners: string[],
): Promise<void> {
  for (const course of courses) {
    await sql`insert into courses (org_id, course_id, lesson_count) values (${orgId}, ${course.courseId}, ${course.lessonCount})`
    for (const userId of learners) {
      await sql`insert into assignments (org_id, user_id, course_id) values (${orgId}, ${userId}, ${course.courseId})`
    }
  }
}

export const isoAgo = (ms: number, now = Date.now()) => new Date(now - ms).toISOString()

export function progressEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    eventId: randomUUID(),
    courseId: 'course-1',
    lessonId: 'lesson-1',
    type: 'lesson_progress',
    progress: 50,
    timeSpentMs: 1000,
    occurredAt: isoAgo(60000),
    ...overrides,
  }
}

/** A validated progress row as the writers take it (what the routes make of a progressEvent). */
export function progressRow(overrides: Partial<ProgressRow> = {}): ProgressRow {
  return {
    i: 0,
    event_id: randomUUID(),
    occurred_at: isoAgo(60000),
    user_id: 'alice',
    org_hint: null,
    clock_skew_ms: null,
    course_id: 'course-1',
    lesson_id: 'lesson-1',
    type: 'lesson_progress',
    progress: 50,
    time_spent_ms: 1000,
    score: null,
    ...overrides,
  }
}

export function analyticsEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    eventId: randomUUID(),
    name: 'lesson.view',
    occurredAt: isoAgo(60000),
    courseId: 'course-1',
    properties: { page: 1 },
    ...overrides,
  }
}
