// Dead letters that can no longer be stored (older than RETENTION_DAYS, or
// their day's partition gone) are discarded as too_old by the replay, and never
// keep the other deferred events of their chunk from being ingested.
import { randomUUID } from 'node:crypto'
import t from 'tap'
import { runJob } from '../../src/jobs/runner.ts'
import { replayJob, runReplay } from '../../src/workers/replay.ts'
import { restoreSnapshot } from '../../src/workers/restore.ts'
import { runRetention } from '../../src/workers/retention.ts'
import { seedOrg, testDatabase, testPool } from '../helper.ts'
import { ingestAnalytics, ingestProgress, jobContext, scratchDir, workerConfig } from './support.ts'

const DAY = 86400000
const ago = (ms: number) => new Date(Date.now() - ms).toISOString()
const count = async (query: PromiseLike<readonly { n: number }[]>) => (await query)[0]!.n

t.test('the replay job discards too-old dead letters and ingests the others of the same chunk', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  await seedOrg(sql, 'org-a', [{ courseId: 'c1', lessonCount: 2 }], [])
  const event = (user: string, occurredAt: string) => ({
    event_id: randomUUID(), occurred_at: occurredAt, user_id: user, course_id: 'c1', lesson_id: 'l1',
    type: 'lesson_started' as const, time_spent_ms: 5, org_hint: 'org-a',
  })
  // Deferred long ago (no assignment then): 45 days back has no partition
  // (RETENTION_DAYS=30); 40 days back has one (a restored day, say) but is
  // just as far outside the window.
  const fortyDaysAgo = ago(40 * DAY)
  await sql`select ensure_day_partition('progress_events', ${fortyDaysAgo.slice(0, 10)}::date)`
  t.equal(await ingestProgress(sql, [event('zed', ago(45 * DAY)), event('yan', fortyDaysAgo)]), 'qq')
  t.equal(await ingestAnalytics(sql, [{ event_id: randomUUID(), occurred_at: ago(45 * DAY), user_id: 'zed', name: 'page.view', org_hint: 'org-a' }]), 'q')
  // Other users' events deferred an hour ago: storable.
  t.equal(await ingestProgress(sql, [event('bob', ago(3600000)), event('amy', ago(7200000))]), 'qq')
  t.equal(await ingestAnalytics(sql, [{ event_id: randomUUID(), occurred_at: ago(3600000), user_id: 'bob', name: 'page.view', org_hint: 'org-a' }]), 'q')
  // Carol has no assignment: her (old) dead letter waits, for retention to snapshot.
  t.equal(await ingestProgress(sql, [event('carol', ago(45 * DAY))]), 'q')

  await sql`insert into assignments (org_id, user_id, course_id)
            select 'org-a', u, 'c1' from unnest(array['zed', 'yan', 'bob', 'amy']) u`
  const context = jobContext(sql, workerConfig(url, { RETENTION_DAYS: '30' }))
  const summary = await runJob(replayJob, {}, context)
  t.match(summary, { replayed: 3, accepted: 3, duplicates: 0, tooOld: 3, waiting: 1, complete: true })
  const [run] = await sql`select summary from worker_runs where job = 'replay-dead-letter' order by id desc limit 1`
  t.match(run, { summary: { accepted: 3, tooOld: 3, waiting: 1 } }, 'recorded in worker_runs')

  const stored = await sql<{ user_id: string }[]>`select user_id from progress_events order by user_id`
  t.same(stored.map((r) => r.user_id), ['amy', 'bob'], 'the good ones stored, the old ones not')
  t.equal(await count(sql`select count(*)::int as n from analytics_events where user_id = 'bob'`), 1)
  t.equal(await count(sql`select count(*)::int as n from analytics_events where user_id = 'zed'`), 0)
  const left = await sql<{ user_id: string }[]>`select user_id from dead_letter_events`
  t.same(left.map((r) => r.user_id), ['carol'], 'the too-old ones are gone')
  t.match(await runReplay(context), { replayed: 0, tooOld: 0, waiting: 1 }, 'nothing left to do')
})

t.test('a chunk of nothing but too-old dead letters does not end the replay', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  await seedOrg(sql, 'org-a', [{ courseId: 'c1', lessonCount: 2 }], [])
  const rows = (user: string, occurredAt: string, ids: string[]) => ids.map((id) => ({
    event_id: id, occurred_at: occurredAt, user_id: user, course_id: 'c1', lesson_id: 'l1', type: 'lesson_started' as const,
  }))
  // Replay takes rows in event_id order: zed's come first, two whole chunks of them.
  const zedIds = [1, 2, 3, 4].map((n) => `00000000-0000-4000-8000-00000000000${n}`)
  const bobIds = [1, 2, 3].map((n) => `f0000000-0000-4000-8000-00000000000${n}`)
  t.equal(await ingestProgress(sql, [...rows('zed', ago(45 * DAY), zedIds), ...rows('bob', ago(60000), bobIds)]), 'qqqqqqq')
  await sql`insert into assignments (org_id, user_id, course_id) values ('org-a', 'zed', 'c1'), ('org-a', 'bob', 'c1')`
  const summary = await runReplay(jobContext(sql, workerConfig(url)), 2)
  t.match(summary, { accepted: 3, tooOld: 4, waiting: 0 })
  t.equal(await count(sql`select count(*)::int as n from progress_events where user_id = 'bob'`), 3)
})

t.test('restored dead letters of a day retention dropped are discarded as too_old, not replayed forever', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const day = ago(40 * DAY).slice(0, 10)
  await sql`select ensure_day_partition('progress_events', ${day}::date), ensure_day_partition('analytics_events', ${day}::date)`
  await seedOrg(sql, 'org-a', [{ courseId: 'c1', lessonCount: 2 }], [])
  const old = { event_id: randomUUID(), occurred_at: `${day}T10:00:00.000Z`, user_id: 'ghost', course_id: 'c1', lesson_id: 'l1', type: 'lesson_started' as const }
  t.equal(await ingestProgress(sql, [old]), 'q')
  const context = jobContext(sql, workerConfig(url, { SNAPSHOT_DIR: scratchDir(t), RETENTION_DAYS: '30' }))
  const retention = await runRetention(context)
  t.same(retention.deadLetters.map((d) => d.rows), [1])
  // npm run restore:snapshot of the dead letters (not of the partition).
  t.match(await restoreSnapshot(sql, retention.deadLetters[0]!.snapshot), { inserted: 1 })

  const good = { ...old, event_id: randomUUID(), occurred_at: ago(60000), user_id: 'bob' }
  t.equal(await ingestProgress(sql, [good]), 'q')
  await sql`insert into assignments (org_id, user_id, course_id) values ('org-a', 'ghost', 'c1'), ('org-a', 'bob', 'c1')`
  t.match(await runReplay(context), { accepted: 1, tooOld: 1, waiting: 0 })
  t.equal(await count(sql`select count(*)::int as n from progress_events where user_id = 'bob'`), 1)
})

t.test('the old replay_dead_letter(user_ids, limit) still works and no longer fails on a day without a partition', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  await seedOrg(sql, 'org-a', [{ courseId: 'c1', lessonCount: 2 }], ['zed', 'bob'])
  await sql`insert into dead_letter_events (stream, event_id, occurred_at, user_id, course_id, event)
            select 'progress', e.id, e.at, e.u, 'c1',
                   jsonb_build_object('event_id', e.id, 'occurred_at', e.at, 'user_id', e.u, 'course_id', 'c1',
                                      'lesson_id', 'l1', 'type', 'lesson_started', 'time_spent_ms', 0)
            from (values (gen_random_uuid(), now() - interval '45 days', 'zed'),
                         (gen_random_uuid(), now() - interval '1 hour', 'bob')) e (id, at, u)`
  const rows = await sql`select * from replay_dead_letter(null, 10)`
  t.same(rows.map((r) => ({ ...r })), [{ stream: 'progress', replayed: 1, accepted: 1, duplicates: 0 }])
  t.equal(await count(sql`select count(*)::int as n from dead_letter_events`), 0)
})
