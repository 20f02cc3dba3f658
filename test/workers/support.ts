// Shared by the worker tests: job contexts over a test database, direct calls
// of the ingestion procedures, rollups recomputed from scratch, and worker
// processes spawned against a test database.
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import type { Test } from 'tap'
import { loadConfig, type Config } from '../../src/config.ts'
import type { Sql } from '../../src/db/pool.ts'
import { startBoss } from '../../src/jobs/boss.ts'
import type { JobContext } from '../../src/jobs/definition.ts'
import { jobs } from '../../src/workers/registry.ts'
import { runRollup, type RollupOptions, type RollupSummary } from '../../src/workers/rollup.ts'
import { TEST_SECRET } from '../helper.ts'

export const WORKER_MAIN = fileURLToPath(new URL('../../src/workers/main.ts', import.meta.url))

export function scratchDir(t: Test, prefix = 'worker-test-'): string {
  const dir = fs.mkdtempSync(path.join(process.env.SCRATCH_DIR ?? os.tmpdir(), prefix))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

export function workerConfig(url: string, env: Record<string, string> = {}): Config {
  return loadConfig({ DATABASE_URL: url, AUTH_JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'silent', ...env })
}

export function jobContext(sql: Sql, config: Config, overrides: Partial<JobContext> = {}): JobContext {
  return { sql, config, log: pino({ level: 'silent' }), signal: new AbortController().signal, ...overrides }
}

// ---- ingestion through the stored procedures (one call per batch, as the API does)

export interface ProgressRow {
  event_id: string
  occurred_at: string
  user_id: string
  course_id: string
  lesson_id: string
  type: 'lesson_started' | 'lesson_progress' | 'lesson_completed'
  progress?: number
  time_spent_ms?: number
  org_hint?: string
}

export interface AnalyticsRow {
  event_id: string
  occurred_at: string
  user_id: string
  name: string
  course_id?: string
  org_hint?: string
}

type Queryable = Pick<Sql, 'unsafe'>

export async function ingestProgress(sql: Queryable, events: ProgressRow[]): Promise<string> {
  const rows = events.map((event, i) => ({ i, progress: event.type === 'lesson_progress' ? 50 : null, time_spent_ms: 0, ...event }))
  const [row] = await sql.unsafe<{ outcomes: string }[]>('select upsert_progress_batch($1::text::json) as outcomes', [JSON.stringify(rows)])
  return row!.outcomes
}

export async function ingestAnalytics(sql: Queryable, events: AnalyticsRow[]): Promise<string> {
  const rows = events.map((event, i) => ({ i, properties: {}, ...event }))
  const [row] = await sql.unsafe<{ outcomes: string }[]>('select upsert_analytics_batch($1::text::json) as outcomes', [JSON.stringify(rows)])
  return row!.outcomes
}

// ---- rollups: what the tables hold, and what a from-scratch recompute gives

export interface RollupTables {
  counters: string[]
  names: string[]
  learners: string[]
  lessons: string[]
}

/** The rollup tables, one sorted text line per row. */
export async function rollupTables(sql: Sql, orgId?: string): Promise<RollupTables> {
  const org = () => (orgId === undefined ? sql`true` : sql`org_id = ${orgId}`)
  const counters = await sql<{ line: string }[]>`
    select concat_ws('|', org_id, granularity, bucket at time zone 'UTC', course_id, active_learners, progress_events,
                     lessons_started, lessons_completed, time_spent_ms, analytics_events) as line
    from org_rollups where ${org()} order by 1`
  const names = await sql<{ line: string }[]>`
    select concat_ws('|', org_id, granularity, bucket at time zone 'UTC', course_id, name, events) as line
    from org_rollup_event_names where ${org()} order by 1`
  const learners = await sql<{ line: string }[]>`
    select concat_ws('|', org_id, granularity, bucket at time zone 'UTC', course_id, user_id) as line
    from org_rollup_learners where ${org()} order by 1`
  const lessons = await sql<{ line: string }[]>`
    select concat_ws('|', org_id, granularity, bucket at time zone 'UTC', course_id, user_id, lesson_course_id, lesson_id, completed) as line
    from org_rollup_lessons where ${org()} order by 1`
  return { counters: counters.map((r) => r.line), names: names.map((r) => r.line), learners: learners.map((r) => r.line), lessons: lessons.map((r) => r.line) }
}

/**
 * Waits until every transaction begun before now has ended, in the whole
 * cluster: a rollup run's window ends at the oldest one still running
 * (rollup_window), and other test files share the server, so a run that must
 * see everything committed so far waits for their transactions too, as a
 * later scheduled run would have.
 */
export async function olderTransactionsEnded(sql: Sql, timeoutMs = 60000): Promise<void> {
  const [current] = await sql<{ xid: string }[]>`select pg_current_xact_id()::text as xid`
  await eventually(async () => {
    const [row] = await sql<{ past: boolean }[]>`select pg_snapshot_xmin(pg_current_snapshot()) > ${current!.xid}::xid8 as past`
    return row!.past || undefined
  }, timeoutMs, 'the transactions begun before the final rollup to end')
}

/** A rollup run that sees every event committed before it (above): for tests that assert its counts. */
export async function rollUpCommitted(context: JobContext, options?: RollupOptions): Promise<RollupSummary> {
  await olderTransactionsEnded(context.sql)
  return runRollup(context, options)
}

/**
 * The rollups recomputed from every raw event, written independently of the
 * worker's SQL: plain GROUP BYs over the event tables, in the same text form.
 */
export async function recomputedRollups(sql: Sql, orgId?: string): Promise<RollupTables> {
  const org = () => (orgId === undefined ? sql`true` : sql`org_id = ${orgId}`)
  // A started or completed lesson, as one text: lessons count once per bucket however many such events it has.
  const events = () => sql`
    select org_id, user_id, course_id, occurred_at, 1 as p,
           case when type = 'lesson_started' then concat_ws('|', user_id, course_id, lesson_id) end as s,
           case when type = 'lesson_completed' then concat_ws('|', user_id, course_id, lesson_id) end as c,
           time_spent_ms::bigint as t, null::text as name, lesson_id, type = 'lesson_completed' as completed,
           type in ('lesson_started', 'lesson_completed') as lesson_event
    from progress_events where ${org()}
    union all
    select org_id, user_id, course_id, occurred_at, 0, null, null, 0, name, null, false, false from analytics_events where ${org()}`
  const keyed = () => sql`
    select e.org_id, g.granularity, date_trunc(g.granularity, e.occurred_at, 'UTC') as bucket, k.course_id,
           e.user_id, e.p, e.s, e.c, e.t, e.name, e.course_id as event_course, e.lesson_id, e.completed, e.lesson_event
    from (${events()}) e
    cross join (values ('hour'), ('day')) g (granularity)
    cross join lateral unnest(array['', e.course_id]) k (course_id)
    where k.course_id is not null`
  const counters = await sql<{ line: string }[]>`
    select concat_ws('|', org_id, granularity, bucket at time zone 'UTC', course_id, count(distinct user_id),
                     sum(p), count(distinct s), count(distinct c), sum(t), count(name)) as line
    from (${keyed()}) x group by org_id, granularity, bucket, course_id order by 1`
  const lessons = await sql<{ line: string }[]>`
    select distinct concat_ws('|', org_id, granularity, bucket at time zone 'UTC', course_id, user_id, event_course, lesson_id, completed) as line
    from (${keyed()}) x where lesson_event order by 1`
  const names = await sql<{ line: string }[]>`
    select concat_ws('|', org_id, granularity, bucket at time zone 'UTC', course_id, name, count(*)) as line
    from (${keyed()}) x where name is not null group by org_id, granularity, bucket, course_id, name order by 1`
  const learners = await sql<{ line: string }[]>`
    select distinct concat_ws('|', org_id, granularity, bucket at time zone 'UTC', course_id, user_id) as line
    from (${keyed()}) x order by 1`
  return { counters: counters.map((r) => r.line), names: names.map((r) => r.line), learners: learners.map((r) => r.line), lessons: lessons.map((r) => r.line) }
}

// ---- worker processes

export interface WorkerProcess {
  child: ChildProcess
  /** Everything the process printed so far. */
  output(): string
  /** Resolves when a log line matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>
  exited: Promise<number | null>
}

export function spawnWorker(t: Test, url: string, env: Record<string, string> = {}): WorkerProcess {
  const child = spawn(process.execPath, [WORKER_MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: url,
      AUTH_JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const waiters = new Set<() => void>()
  const onData = (chunk: Buffer) => {
    output += chunk.toString()
    for (const check of waiters) check()
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  return {
    child,
    output: () => output,
    exited,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`worker did not log ${pattern} within ${timeoutMs} ms; output:\n${output.slice(-2000)}`))
        }, timeoutMs)
        const check = () => {
          if (!pattern.test(output)) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve()
        }
        waiters.add(check)
        check()
      })
    },
  }
}

/** Polls `probe` until it returns a value that is not undefined. */
export async function eventually<T>(probe: () => Promise<T | undefined>, timeoutMs = 30000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/**
 * A worker process running a rollup that waits on `heldOrg`'s watermark row,
 * locked by the test until it rolls back `holder`: the run gets past the other
 * orgs and blocks there. Resolves with the job's id once the worker is ready.
 */
export async function workerWithHeldRollup(t: Test, sql: Sql, url: string, heldOrg: string) {
  await sql`insert into rollup_org_state (org_id) values (${heldOrg})`
  const holder = await sql.reserve()
  t.teardown(() => holder.release())
  await holder`begin`
  await holder`select * from rollup_org_state where org_id = ${heldOrg} for update`

  const worker = spawnWorker(t, url, { SNAPSHOT_DIR: scratchDir(t) })
  await worker.waitFor(/worker ready/)
  const producer = await startBoss({ url, definitions: jobs, role: 'producer' })
  t.teardown(() => producer.stop({ graceful: false }))
  const jobId = (await producer.send('rollup', {}))!
  return { worker, holder, jobId }
}
