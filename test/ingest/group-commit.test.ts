import { setImmediate as nextTurn } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { groupCommitWriter } from '../../src/ingest/group-commit.ts'
import type { ProgressRow } from '../../src/ingest/validate.ts'
import type { BatchWriter } from '../../src/ingest/writer.ts'
import { ConfigError, loadConfig } from '../../src/config.ts'
import { createPool } from '../../src/db/pool.ts'
import { build, progressEvent, progressRow, seedOrg, testDatabase, testPool } from '../helper.ts'

/** Rows as the routes hand them over: numbered by their index in the request. */
const numbered = (rows: ProgressRow[]) => rows.map((r, i) => ({ ...r, i }))

async function setup(t: Test) {
  const url = await testDatabase(t)
  const sql = testPool(t, url, 4)
  await seedOrg(sql, 'org-a', [{ courseId: 'course-1', lessonCount: 4 }], ['alice', 'bob', 'carol'])
  const calls: number[] = []
  // One call at a time: while the first runs, everything else queues and coalesces.
  const writer = groupCommitWriter(sql, { maxInFlight: 1, onCall: (_stream, requests) => calls.push(requests) })
  return { sql, writer, calls }
}

t.test('concurrent requests coalesce into fewer procedure calls', async (t) => {
  const { sql, writer, calls } = await setup(t)
  const requests = Array.from({ length: 20 }, (_, k) =>
    numbered([progressRow({ user_id: ['alice', 'bob', 'carol'][k % 3]!, lesson_id: `lesson-${k % 4}` }), progressRow({ user_id: ['alice', 'bob', 'carol'][k % 3]! })]),
  )
  const outcomes = await Promise.all(requests.map((rows) => writer.write('progress', rows)))
  t.same(outcomes, requests.map(() => 'aa'))
  t.equal(calls.reduce((a, b) => a + b, 0), 20, 'every request was carried by some call')
  t.equal(calls.length, 2, `20 requests took ${calls.length} calls: the first alone, the rest together`)
  const [stored] = await sql<{ count: number }[]>`select count(*)::int as count from progress_events`
  t.equal(stored!.count, 40)
  // The course aggregate saw every coalesced request's lessons.
  const courses = await sql<{ user_id: string; lessons_started: number }[]>`
    select user_id, lessons_started from user_course_progress order by user_id`
  t.same(courses.map((c) => [c.user_id, c.lessons_started]), [['alice', 4], ['bob', 4], ['carol', 4]])
})

t.test('each coalesced request gets exactly its own outcomes', async (t) => {
  const { writer, calls } = await setup(t)
  const stored = progressRow()
  t.equal(await writer.write('progress', numbered([stored])), 'a')
  // The slot frees just after the caller is answered: let it, so `first` goes alone.
  await nextTurn()
  calls.length = 0

  const repeated = progressRow({ user_id: 'bob' })
  const requests = [
    numbered([progressRow(), progressRow()]),
    // stored earlier: d; unassigned user: q; repeated within the request: a then d
    numbered([stored, progressRow({ user_id: 'dave' }), repeated, repeated]),
    numbered([progressRow({ user_id: 'erin' })]),
    numbered([progressRow({ user_id: 'carol' }), stored, progressRow({ user_id: 'carol', lesson_id: 'lesson-2' })]),
  ]
  // The routes drop rejected events, so a request's i's can have gaps: keep one.
  requests[0] = [{ ...requests[0]![0]!, i: 0 }, { ...requests[0]![1]!, i: 5 }]
  const first = writer.write('progress', numbered([progressRow()])) // occupies the only slot
  const outcomes = await Promise.all(requests.map((rows) => writer.write('progress', rows)))
  t.equal(await first, 'a')
  t.same(outcomes, ['aa', 'dqad', 'q', 'ada'])
  t.same(calls, [1, 4], 'the four requests shared one call')
})

t.test('a duplicate across two coalesced requests is accepted once, for the earlier', async (t) => {
  const { sql, writer, calls } = await setup(t)
  const shared = progressRow({ user_id: 'bob', lesson_id: 'lesson-3', time_spent_ms: 700 })
  const first = writer.write('progress', numbered([progressRow()]))
  const [earlier, later] = await Promise.all([
    writer.write('progress', numbered([progressRow({ user_id: 'bob' }), shared])),
    writer.write('progress', numbered([shared, progressRow({ user_id: 'bob', lesson_id: 'lesson-2' })])),
  ])
  await first
  t.same(calls, [1, 2], 'both requests were in one call')
  t.equal(earlier, 'aa')
  t.equal(later, 'da')
  // Time spent counts the shared event once.
  const [lesson] = await sql<{ time_spent_ms: number; event_count: number }[]>`
    select time_spent_ms, event_count from user_lesson_progress where user_id = 'bob' and lesson_id = 'lesson-3'`
  t.same(lesson, { time_spent_ms: 700, event_count: 1 })
})

t.test('a failing request does not fail the requests it was coalesced with', async (t) => {
  const { sql, writer, calls } = await setup(t)
  const first = writer.write('progress', numbered([progressRow()]))
  // No partition holds 1990: the insert fails inside the procedure.
  const bad = numbered([progressRow({ user_id: 'bob' }), progressRow({ user_id: 'bob', occurred_at: '1990-01-01T00:00:00Z' })])
  const good1 = numbered([progressRow({ user_id: 'carol' })])
  const good2 = numbered([progressRow({ user_id: 'alice', lesson_id: 'lesson-2' }), progressRow({ user_id: 'dave' })])
  const results = await Promise.allSettled([writer.write('progress', good1), writer.write('progress', bad), writer.write('progress', good2)])
  await first
  t.same(results[0], { status: 'fulfilled', value: 'a' })
  t.equal(results[1]!.status, 'rejected', 'the bad request fails')
  t.match((results[1] as PromiseRejectedResult).reason, { message: /partition/ })
  t.same(results[2], { status: 'fulfilled', value: 'aq' })
  t.same(calls, [1, 3, 1, 1, 1], 'one coalesced call failed, then each request went alone')
  const users = await sql<{ user_id: string }[]>`select user_id from progress_events order by user_id`
  t.same(users.map((u) => u.user_id), ['alice', 'alice', 'carol'], 'nothing of the bad request was stored')
})

t.test('a lost connection fails every coalesced request at once, without a retry each', async (t) => {
  // Nothing listens on port 1: every call fails to connect, as when the database is down.
  const sql = createPool('postgres://postgres@127.0.0.1:1/none', { max: 2, connectTimeout: 1 })
  t.teardown(() => sql.end({ timeout: 1 }))
  const calls: number[] = []
  const writer = groupCommitWriter(sql, { maxInFlight: 1, onCall: (_stream, requests) => calls.push(requests) })
  const results = await Promise.allSettled([progressRow(), progressRow(), progressRow(), progressRow()].map((r) => writer.write('progress', numbered([r]))))
  t.same(results.map((r) => r.status), ['rejected', 'rejected', 'rejected', 'rejected'])
  t.same(results.map((r) => ((r as PromiseRejectedResult).reason as { code?: string }).code), ['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED'])
  t.same(calls, [1, 3], 'the first alone, the other three together, and no retry')
})

t.test('a call never grows past maxRows, but a large request still goes whole', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url, 4)
  await seedOrg(sql, 'org-a', [{ courseId: 'course-1', lessonCount: 4 }], ['alice'])
  const sizes: number[] = []
  const writer = groupCommitWriter(sql, { maxInFlight: 1, maxRows: 5, onCall: (_s, _r, rows) => sizes.push(rows) })
  const requests = [1, 3, 3, 2, 7].map((n) => numbered(Array.from({ length: n }, () => progressRow())))
  const outcomes = await Promise.all(requests.map((rows) => writer.write('progress', rows)))
  t.same(outcomes, ['a', 'aaa', 'aaa', 'aa', 'aaaaaaa'])
  t.same(sizes, [1, 3, 5, 7])
})

t.test('a busy stream lingers for company before its next call; a quiet one never does', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url, 4)
  await seedOrg(sql, 'org-a', [{ courseId: 'course-1', lessonCount: 4 }], ['alice'])
  const calls: number[] = []
  const writer = (lingerMs: number, lingerUntil: number) =>
    groupCommitWriter(sql, { maxInFlight: 1, lingerMs, lingerUntil, onCall: (_stream, requests) => calls.push(requests) })
  const one = () => numbered([progressRow()])
  /**
   * A call of one, then a call of two during which a request arrives; once
   * that busy call has ended, two more. Answers their outcomes and how long
   * after the busy call they were answered.
   */
  async function afterABusyCall(writer: BatchWriter) {
    calls.length = 0
    const first = writer.write('progress', one())
    const pair = [writer.write('progress', one()), writer.write('progress', one())]
    await first
    await nextTurn() // the pair's call is running
    const waiting = writer.write('progress', one())
    await Promise.all(pair)
    const busyCallDone = performance.now()
    await nextTurn() // without lingering, `waiting` would now go alone
    const outcomes = await Promise.all([waiting, writer.write('progress', one()), writer.write('progress', one())])
    return { outcomes, ms: performance.now() - busyCallDone }
  }

  // Quiet: every call carried one request, so the next goes at once (no 10 s linger).
  const quiet = writer(10_000, 6)
  const begun = performance.now()
  await quiet.write('progress', one())
  await quiet.write('progress', one())
  t.ok(performance.now() - begun < 5_000, 'requests after a call alone are not held')
  t.same(calls, [1, 1])

  // Busy: the next call waits 300 ms, and what arrives meanwhile goes with it.
  const busy = await afterABusyCall(writer(300, 6))
  t.same(busy.outcomes, ['a', 'a', 'a'])
  t.ok(busy.ms >= 290, 'the call after a busy one waited for company')
  t.same(calls, [1, 2, 3], 'the request waiting and the two that came during the linger shared one call')

  // Enough company ends the wait at once: lingerUntil requests waiting.
  const gathered = await afterABusyCall(writer(10_000, 3))
  t.same(gathered.outcomes, ['a', 'a', 'a'])
  t.ok(gathered.ms < 5_000, 'the third waiting request sent the call without the 10 s linger')
  t.same(calls, [1, 2, 3])
  const [stored] = await sql<{ count: number }[]>`select count(*)::int as count from progress_events`
  t.equal(stored!.count, 14)
})

t.test('a large coalesced call with many deferred and repeated events answers every request in order', async (t) => {
  const { sql, writer, calls } = await setup(t)
  const shared = Array.from({ length: 20 }, (_, k) => progressRow({ user_id: k % 2 ? 'alice' : `nobody-${k}` }))
  const requests = Array.from({ length: 10 }, (_, r) =>
    numbered(
      Array.from({ length: 30 }, (_, k) => {
        if (k < 5) return shared[(r * 5 + k) % shared.length]! // every shared event is sent by two requests
        return k % 3 === 0 ? progressRow({ user_id: `nobody-${r}-${k}` }) : progressRow({ user_id: 'bob', lesson_id: `lesson-${k % 4}` })
      }),
    ),
  )
  // What the contract says each row must get: the first sending of an event
  // is accepted (assigned user) or deferred (no assignment); any later one is a duplicate.
  const seen = new Set<string>()
  const expected = requests.map((rows) =>
    rows
      .map((r) => {
        if (seen.has(r.event_id)) return 'd'
        seen.add(r.event_id)
        return r.user_id.startsWith('nobody') ? 'q' : 'a'
      })
      .join(''),
  )
  const first = writer.write('progress', numbered([progressRow()]))
  const outcomes = await Promise.all(requests.map((rows) => writer.write('progress', rows)))
  await first
  t.same(calls, [1, 10], 'the ten requests shared one call of 300 rows')
  t.same(outcomes, expected)
  const [counts] = await sql<{ stored: number; deferred: number }[]>`
    select (select count(*)::int from progress_events) as stored, (select count(*)::int from dead_letter_events) as deferred`
  const letters = expected.join('')
  t.same(counts, { stored: 1 + letters.split('a').length - 1, deferred: letters.split('q').length - 1 })
})

t.test('through the API with GROUP_COMMIT on, concurrent batches are each answered for themselves', async (t) => {
  const h = await build(t, { GROUP_COMMIT: true })
  const learners = Array.from({ length: 12 }, (_, k) => `learner-${k}`)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], learners)
  const shared = progressEvent({ userId: 'learner-0' })
  const sends = learners.map(async (userId, k) => {
    const events = [progressEvent({ userId }), progressEvent({ userId, lessonId: 'lesson-2' })]
    // learner-0 sends the same event twice over two requests; one is a duplicate
    if (userId === 'learner-0') events.push(shared)
    if (k === 11) events.push(progressEvent({ userId, courseId: 'unassigned' }), { bad: true })
    const token = await h.token(userId)
    const res = await h.app.inject({
      method: 'POST', url: '/api/client/progress/batch', headers: { authorization: `Bearer ${token}` }, payload: { events },
    })
    return res.json()
  })
  const again = (async () => {
    const token = await h.token('learner-0')
    const res = await h.app.inject({
      method: 'POST', url: '/api/client/progress/batch', headers: { authorization: `Bearer ${token}` }, payload: { events: [shared] },
    })
    return res.json()
  })()
  const bodies = await Promise.all([...sends, again])
  for (const body of bodies.slice(1, 11)) t.same(body, { accepted: 2, duplicates: 0, deferred: 0, rejected: [] })
  t.match(bodies[11], { accepted: 2, duplicates: 0, deferred: 1, rejected: [{ index: 3, code: 'invalid_event' }] })
  const sharedCounts = [bodies[0], bodies[12]].map((b) => [b.accepted, b.duplicates])
  t.same(sharedCounts.flat().reduce((a: number, b: number) => a + b, 0), 4, 'learner-0 events each counted once')
  t.same(sharedCounts.map(([, d]) => d).reduce((a: number, b: number) => a + b, 0), 1, 'the shared event is one duplicate')
  const [stored] = await h.sql<{ count: number }[]>`select count(*)::int as count from progress_events`
  t.equal(stored!.count, 25)
})

t.test('GROUP_COMMIT is on unless set to false', async (t) => {
  t.equal(loadConfig({}).GROUP_COMMIT, true)
  t.equal(loadConfig({ GROUP_COMMIT: 'false' }).GROUP_COMMIT, false)
  t.equal(loadConfig({ GROUP_COMMIT: '0' }).GROUP_COMMIT, false)
  t.throws(() => loadConfig({ GROUP_COMMIT: 'sometimes' }), new ConfigError('GROUP_COMMIT', 'must be boolean (got "sometimes")'))
})
