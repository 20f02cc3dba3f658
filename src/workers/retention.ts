// Retention: every event partition older than RETENTION_DAYS is snapshotted to
// SNAPSHOT_DIR, verified, and only then dropped; dead letters of those days
// likewise (they could never be replayed: their partitions are gone), and the
// job runs recorded before those days.
//
// Per partition, each step a state the next run resumes from:
//   1. rollups must already hold its rows (else run a rollup first, or wait);
//   2. DETACH ... CONCURRENTLY, so ingestion never waits on it and nothing can
//      change it afterwards (re-attached if a row slipped in meanwhile);
//   3. snapshot the detached table in one REPEATABLE READ transaction, verify
//      the file from disk against the row count;
//   4. DROP, after checking the table still holds exactly the snapshot's rows.
// Any failure leaves the partition (attached or detached) in place.
import fs from 'node:fs'
import type { JobContext } from '../jobs/definition.ts'
import { job } from '../jobs/definition.ts'
import type { Sql } from '../db/pool.ts'
import { JobLocks, withJobLock } from './advisory-lock.ts'
import { runRollup } from './rollup.ts'
import { quoteIdent, removeUnfinishedSnapshots, writeSnapshot } from './snapshot.ts'

export interface RetentionPartition {
  parent: string
  partition: string
  day: string
  attached: boolean
  detachPending: boolean
  rows: number
}

export interface RetentionPlan {
  /** Partitions of days before this one (UTC) are dropped. */
  before: string
  partitions: RetentionPartition[]
  deadLetterDays: { day: string; rows: number }[]
}

export interface RetentionSummary {
  before: string
  dropped: { partition: string; rows: number; snapshot: string }[]
  deadLetters: { day: string; rows: number; snapshot: string }[]
  /** Partitions left for a later run, and why. */
  deferred: { partition: string; reason: string }[]
  complete: boolean
  /** Job runs recorded before the retention window, deleted (worker_runs grows by every run). */
  workerRunsPruned?: number
  skipped?: string
}

type RunContext = Pick<JobContext, 'sql' | 'config' | 'signal' | 'progress' | 'log'>

/** How long retention waits for a rollup run in progress before deferring partitions. */
const ROLLUP_WAIT_MS = 10 * 60000

export async function planRetention(sql: Sql, retentionDays: number): Promise<RetentionPlan> {
  const [cutoff] = await sql<{ before: string }[]>`
    select ((now() at time zone 'UTC')::date - ${retentionDays}::int)::text as before`
  const before = cutoff!.before
  const partitions = await sql<{ parent: string; partition_name: string; day: string; attached: boolean; detach_pending: boolean }[]>`
    select parent, partition_name, day::text, attached, detach_pending from retention_partitions(${before}::date)`
  const withRows: RetentionPartition[] = []
  for (const p of partitions) {
    const [count] = await sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${quoteIdent(p.partition_name)}`)
    withRows.push({ parent: p.parent, partition: p.partition_name, day: p.day, attached: p.attached, detachPending: p.detach_pending, rows: count!.n })
  }
  const deadLetterDays = await sql<{ day: string; rows: number }[]>`
    select (occurred_at at time zone 'UTC')::date::text as day, count(*)::int as rows
    from dead_letter_events
    where occurred_at < (${before}::date)::timestamp at time zone 'UTC'
    group by 1 order by 1`
  return { before, partitions: withRows, deadLetterDays: [...deadLetterDays] }
}

export async function runRetention(context: RunContext): Promise<RetentionSummary> {
  const result = await withJobLock(context.sql, JobLocks.retention, () => retentionPass(context))
  return result ?? { before: '', dropped: [], deadLetters: [], deferred: [], complete: false, skipped: 'another retention run is in progress' }
}

async function retentionPass(context: RunContext): Promise<RetentionSummary> {
  const { sql, config, signal, progress } = context
  const plan = await planRetention(sql, config.RETENTION_DAYS)
  const summary: RetentionSummary = { before: plan.before, dropped: [], deadLetters: [], deferred: [], complete: true }
  const steps = plan.deadLetterDays.length + plan.partitions.length
  let done = 0
  progress?.(0, steps)
  fs.mkdirSync(config.SNAPSHOT_DIR, { recursive: true })
  removeUnfinishedSnapshots(config.SNAPSHOT_DIR)

  for (const { day } of plan.deadLetterDays) {
    if (signal.aborted) return { ...summary, complete: false }
    summary.deadLetters.push(await snapshotDeadLetters(sql, config.SNAPSHOT_DIR, day))
    progress?.(++done, steps)
  }

  let rolledUp = false
  for (const partition of plan.partitions) {
    if (signal.aborted) return { ...summary, complete: false }
    if (partition.attached && !partition.detachPending && !(await rolledUpAlready(sql, partition.partition))) {
      // Once per run: one rollup pass covers every partition (waiting for a scheduled one to finish).
      if (!rolledUp) {
        await runRollup({ sql, signal }, { waitMs: ROLLUP_WAIT_MS })
        rolledUp = true
      }
      if (!(await rolledUpAlready(sql, partition.partition))) {
        summary.deferred.push({ partition: partition.partition, reason: 'rollups have not read all of its rows yet' })
        progress?.(++done, steps)
        continue
      }
    }
    const outcome = await retirePartition(sql, config.SNAPSHOT_DIR, partition)
    if ('deferred' in outcome) summary.deferred.push({ partition: partition.partition, reason: outcome.deferred })
    else summary.dropped.push(outcome)
    progress?.(++done, steps)
  }
  // Every job run is recorded (an analytics recompute per on-demand read), and
  // only the latest finish is read (GET /api/health): runs older than the raw
  // events they were about go too.
  const [pruned] = await sql<{ n: number }[]>`
    with gone as (delete from worker_runs where finished_at < (${plan.before}::date)::timestamp at time zone 'UTC' returning 1)
    select count(*)::int as n from gone`
  return { ...summary, workerRunsPruned: pruned!.n }
}

async function rolledUpAlready(sql: Sql, partition: string): Promise<boolean> {
  const [row] = await sql<{ done: boolean }[]>`select partition_rolled_up(${partition}) as done`
  return row!.done
}

async function retirePartition(
  sql: Sql,
  dir: string,
  partition: RetentionPartition,
): Promise<{ partition: string; rows: number; snapshot: string } | { deferred: string }> {
  const table = quoteIdent(partition.partition)
  const parent = quoteIdent(partition.parent)
  if (partition.attached) {
    // Outside a transaction block, as CONCURRENTLY requires; FINALIZE completes
    // a concurrent detach an earlier run started but did not finish.
    await sql.unsafe(`alter table ${parent} detach partition ${table} ${partition.detachPending ? 'finalize' : 'concurrently'}`)
    if (!(await rolledUpAlready(sql, partition.partition))) {
      // A replayed dead letter landed between the check and the detach: put it back for the rollups.
      const [bounds] = await sql<{ from: string; to: string }[]>`
        select (${partition.day}::date::timestamp at time zone 'UTC')::text as from,
               ((${partition.day}::date + 1)::timestamp at time zone 'UTC')::text as to`
      await sql.unsafe(`alter table ${parent} attach partition ${table} for values from ('${bounds!.from}') to ('${bounds!.to}')`)
      return { deferred: 'rows arrived while detaching; re-attached for the rollups' }
    }
  }

  const snapshot = await sql.begin('isolation level repeatable read', async (tx) => {
    const [count] = await tx.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table}`)
    const columns = await tx<{ name: string }[]>`
      select attname as name from pg_attribute
      where attrelid = ${partition.partition}::regclass and attnum > 0 and not attisdropped
      order by attnum`
    return writeSnapshot(tx, {
      dir,
      table: partition.parent,
      source: partition.partition,
      day: partition.day,
      columns: columns.map((column) => column.name),
      select: `select * from ${table}`,
      expectedRows: count!.n,
    })
  })

  await sql.begin(async (tx) => {
    await tx`set local lock_timeout = '10s'`
    await tx.unsafe(`lock table ${table} in access exclusive mode`)
    const [count] = await tx.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table}`)
    if (count!.n !== snapshot.manifest.rows) {
      throw new Error(`${partition.partition} changed after its snapshot (${count!.n} rows, snapshot ${snapshot.manifest.rows}); kept`)
    }
    await tx.unsafe(`drop table ${table}`)
  })
  return { partition: partition.partition, rows: snapshot.manifest.rows, snapshot: snapshot.path }
}

/** Snapshots then deletes one day of dead letters, in one transaction (rows locked against replays). */
async function snapshotDeadLetters(sql: Sql, dir: string, day: string): Promise<{ day: string; rows: number; snapshot: string }> {
  return sql.begin(async (tx) => {
    const [range] = await tx<{ from: string; to: string }[]>`
      select (${day}::date::timestamp at time zone 'UTC')::text as from,
             ((${day}::date + 1)::timestamp at time zone 'UTC')::text as to`
    const where = `occurred_at >= '${range!.from}'::timestamptz and occurred_at < '${range!.to}'::timestamptz`
    const [count] = await tx.unsafe<{ n: number }[]>(
      `select count(*)::int as n from (select 1 from dead_letter_events where ${where} for update) locked`,
    )
    const columns = await tx<{ name: string }[]>`
      select attname as name from pg_attribute
      where attrelid = 'dead_letter_events'::regclass and attnum > 0 and not attisdropped
      order by attnum`
    const snapshot = await writeSnapshot(tx, {
      dir,
      table: 'dead_letter_events',
      source: 'dead_letter_events',
      day,
      columns: columns.map((column) => column.name),
      select: `select * from dead_letter_events where ${where}`,
      expectedRows: count!.n,
    })
    const deleted = await tx.unsafe(`delete from dead_letter_events where ${where}`)
    if (deleted.count !== count!.n) throw new Error(`dead letters of ${day} changed during their snapshot; kept`)
    return { day, rows: count!.n, snapshot: snapshot.path }
  })
}

export const retentionJob = job({
  name: 'retention-events',
  // Nightly, after the day's last events have long been rolled up.
  cron: () => '30 3 * * *',
  policy: 'stately',
  retryLimit: 3,
  expireInSeconds: 4 * 3600,
  async handler(_data, context) {
    return runRetention(context)
  },
})
