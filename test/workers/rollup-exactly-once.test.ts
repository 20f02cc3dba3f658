// Exactly once, as a property: whatever interleaving of ingestion (retries,
// duplicates, late events, transactions still open while rollups run,
// deferred events replayed later) with rollup runs (concurrent ones, ones
// killed between or in the middle of chunks, tiny chunks), the rollup tables
// end up equal to a from-scratch recompute of the raw events.
import fc from 'fast-check'
import t from 'tap'
import type { Sql } from '../../src/db/pool.ts'
import { runRollup } from '../../src/workers/rollup.ts'
import { testDatabase, testPool } from '../helper.ts'
import { ingestAnalytics, ingestProgress, jobContext, recomputedRollups, rollUpCommitted, rollupTables, workerConfig, type AnalyticsRow, type ProgressRow } from './support.ts'

const DAY = 86400000
const HOUR = 3600000
const today = Math.floor(Date.now() / DAY) * DAY
const eventIds = Array.from({ length: 20 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`)
const USERS = ['u1', 'u2', 'u3', 'u4', 'u5']
/** Only the open-transaction operations write for this learner, so nothing waits on their row locks. */
const OPEN_TX_USER = 'u6'

const ASSIGNMENTS: [org: string, user: string, course: string][] = [
  ['o1', 'u1', 'c1'], ['o1', 'u1', 'c2'], ['o1', 'u2', 'c1'], ['o1', 'u2', 'c2'],
  ['o2', 'u3', 'c1'], ['o2', 'u4', 'c2'], ['o3', 'u1', 'c2'], ['o2', OPEN_TX_USER, 'c1'],
]
// u5 has no assignment until an `assign` operation: their events are deferred, then replayed.

// Times on and next to hour (and so day) boundaries, and late: up to 12 days back.
const occurredAt = fc
  .record({ day: fc.nat(12), hour: fc.nat(23), offset: fc.constantFrom(0, 1, 1800000, HOUR - 1) })
  .map(({ day, hour, offset }) => new Date(today - day * DAY + hour * HOUR + offset).toISOString())

const progressEvent = fc
  .record({
    id: fc.nat(eventIds.length - 1),
    occurredAt,
    user: fc.constantFrom(...USERS),
    course: fc.constantFrom('c1', 'c2'),
    lesson: fc.constantFrom('l1', 'l2', 'l3'),
    type: fc.constantFrom('lesson_started' as const, 'lesson_progress' as const, 'lesson_completed' as const),
    time: fc.nat(1000),
  })
  .map((e): ProgressRow => ({
    event_id: eventIds[e.id]!, occurred_at: e.occurredAt, user_id: e.user, course_id: e.course, lesson_id: e.lesson, type: e.type, time_spent_ms: e.time,
  }))

const analyticsEvent = fc
  .record({
    id: fc.nat(eventIds.length - 1),
    occurredAt,
    user: fc.constantFrom(...USERS),
    name: fc.constantFrom('page.view', 'quiz.answer', 'video.play'),
    course: fc.option(fc.constantFrom('c1', 'c2'), { nil: undefined }),
    // A token's org: may name an org no assignment mentions (o4).
    hint: fc.option(fc.constantFrom('o1', 'o4'), { nil: undefined }),
  })
  .map((e): AnalyticsRow => ({
    event_id: eventIds[e.id]!, occurred_at: e.occurredAt, user_id: e.user, name: e.name,
    ...(e.course ? { course_id: e.course } : {}), ...(e.hint ? { org_hint: e.hint } : {}),
  }))

type Batch = { stream: 'progress'; events: ProgressRow[] } | { stream: 'analytics'; events: AnalyticsRow[] }
const batch: fc.Arbitrary<Batch> = fc.oneof(
  fc.record({ stream: fc.constant('progress' as const), events: fc.array(progressEvent, { minLength: 1, maxLength: 6 }) }),
  fc.record({ stream: fc.constant('analytics' as const), events: fc.array(analyticsEvent, { minLength: 1, maxLength: 6 }) }),
)

const chunkEvents = fc.integer({ min: 1, max: 6 })
type Op =
  | { kind: 'ingest'; batch: Batch }
  | { kind: 'retry'; index: number }
  | { kind: 'openTx'; batch: Batch }
  | { kind: 'closeTx'; commit: boolean }
  | { kind: 'rollup'; chunkEvents: number; concurrency: number }
  | { kind: 'concurrent'; chunkEvents: number; batch: Batch }
  | { kind: 'killed'; chunkEvents: number; orgs: { pick: number; commit: boolean }[] }
  | { kind: 'assign' }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('ingest' as const), batch }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('retry' as const), index: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('openTx' as const), batch }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('closeTx' as const), commit: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('rollup' as const), chunkEvents, concurrency: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('concurrent' as const), chunkEvents, batch }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('killed' as const),
      chunkEvents,
      orgs: fc.array(fc.record({ pick: fc.nat(), commit: fc.boolean() }), { minLength: 1, maxLength: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('assign' as const) }) },
)

function withUser(source: Batch, user: string): Batch {
  // Fresh keys: an open transaction's rows must not collide with (and so wait on) anyone else's.
  const fresh = () => crypto.randomUUID()
  return source.stream === 'progress'
    ? { stream: 'progress', events: source.events.map((e) => ({ ...e, event_id: fresh(), user_id: user, course_id: 'c1' })) }
    : { stream: 'analytics', events: source.events.map((e) => ({ ...e, event_id: fresh(), user_id: user, org_hint: 'o2' })) }
}

async function ingest(sql: Pick<Sql, 'unsafe'>, b: Batch): Promise<void> {
  if (b.stream === 'progress') await ingestProgress(sql, b.events)
  else await ingestAnalytics(sql, b.events)
}

async function reset(sql: Sql): Promise<void> {
  // DELETE, not TRUNCATE: with a few rows it is far cheaper than truncating ~80 partitions and their indexes.
  for (const table of ['progress_events', 'analytics_events', 'dead_letter_events', 'user_lesson_progress', 'user_course_progress',
    'org_rollups', 'org_rollup_event_names', 'org_rollup_learners', 'org_rollup_lessons', 'rollup_org_state', 'assignments']) {
    await sql.unsafe(`delete from ${table}`)
  }
  await sql`update rollup_state set xid_low = '0'`
  for (const [org, user, course] of ASSIGNMENTS) {
    await sql`insert into assignments (org_id, user_id, course_id) values (${org}, ${user}, ${course})`
  }
}

t.test('rollups equal a from-scratch recompute after any interleaving', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url, 10)
  // Only the days the cases use: fewer partitions make every statement cheaper to plan.
  for (const { name } of await sql<{ name: string }[]>`
    select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent in ('progress_events'::regclass, 'analytics_events'::regclass)
      -- substring() is null for other relations, which the planner may evaluate this on first
      and to_date(substring(c.relname from '_p(\\d{8})$'), 'YYYYMMDD') not between current_date - 13 and current_date + 1`) {
    await sql.unsafe(`drop table ${name}`)
  }
  const config = workerConfig(url)
  const context = jobContext(sql, config)
  let cases = 0
  let operations = 0

  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 4, maxLength: 18 }), async (ops) => {
      cases++
      await reset(sql)
      const history: Batch[] = []
      let open: { session: Awaited<ReturnType<Sql['reserve']>>; batch: Batch } | undefined
      const closeOpen = async (commit: boolean) => {
        if (!open) return
        await open.session.unsafe(commit ? 'commit' : 'rollback')
        if (commit) history.push(open.batch)
        open.session.release()
        open = undefined
      }
      try {
        for (const step of ops) {
          operations++
          switch (step.kind) {
            case 'ingest':
              await ingest(sql, step.batch)
              history.push(step.batch)
              break
            case 'retry':
              if (history.length) await ingest(sql, history[step.index % history.length]!)
              break
            case 'openTx': {
              await closeOpen(true)
              const session = await sql.reserve()
              open = { session, batch: withUser(step.batch, OPEN_TX_USER) }
              await session.unsafe('begin')
              await ingest(session, open.batch)
              break
            }
            case 'closeTx':
              await closeOpen(step.commit)
              break
            case 'rollup':
              await runRollup(context, { chunkEvents: step.chunkEvents, concurrency: step.concurrency })
              break
            case 'concurrent':
              // Two workers' runs (no run lock: only the per-org rows serialise them) and ingestion at once.
              await Promise.all([
                runRollup(context, { chunkEvents: step.chunkEvents, exclusive: false }),
                runRollup(context, { chunkEvents: step.chunkEvents, exclusive: false, concurrency: 2 }),
                ingest(sql, step.batch).then(() => history.push(step.batch)),
              ])
              break
            case 'killed': {
              // A worker that died mid-run: some orgs' chunks committed, some rolled back
              // (killed inside the transaction), and the global mark never moved.
              const [window] = await sql<{ low: string; high: string }[]>`select xid_low::text as low, xid_high::text as high from rollup_window()`
              const orgs = (await sql<{ org: string }[]>`select org from rollup_changed_orgs(${window!.low}::xid8, ${window!.high}::xid8) as org order by 1`).map((r) => r.org)
              if (!orgs.length) break
              for (const { pick, commit } of step.orgs) {
                await sql
                  .begin(async (tx) => {
                    await tx`select * from rollup_org_chunk(${orgs[pick % orgs.length]!}, ${window!.high}::xid8, ${step.chunkEvents})`
                    if (!commit) throw new Killed()
                  })
                  .catch((error) => {
                    if (!(error instanceof Killed)) throw error
                  })
              }
              break
            }
            case 'assign':
              await sql`insert into assignments (org_id, user_id, course_id) values ('o3', 'u5', 'c1'), ('o3', 'u5', 'c2') on conflict do nothing`
              while ((await sql`select * from replay_dead_letter(null, 3)`).length > 0);
              break
          }
        }
      } finally {
        await closeOpen(true)
      }
      await rollUpCommitted(context)
      const actual = await rollupTables(sql)
      const expected = await recomputedRollups(sql)
      for (const table of ['counters', 'names', 'learners', 'lessons'] as const) {
        const extra = actual[table].filter((line) => !expected[table].includes(line))
        const missing = expected[table].filter((line) => !actual[table].includes(line))
        if (extra.length || missing.length) {
          throw new Error(`${table} differ from the recompute: unexpected ${JSON.stringify(extra.slice(0, 3))}, missing ${JSON.stringify(missing.slice(0, 3))}`)
        }
      }
    }),
    { numRuns: Number(process.env.ROLLUP_PROPERTY_RUNS ?? 100), interruptAfterTimeLimit: 35000, markInterruptAsFailure: false },
  )
  t.ok(cases >= 40, `${cases} random cases (${operations} operations) held`)
})

class Killed extends Error {}
