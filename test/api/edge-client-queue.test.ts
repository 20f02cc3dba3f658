// X-Client-Queue-Depth: the latest report per user over the last 5 minutes,
// in bounded memory, summed into /api/health offlineQueue.backlog.
import t from 'tap'
import { OfflineBacklog } from '../../src/api/plugins/client-queue.ts'
import { seedOrg } from '../helper.ts'
import { buildEdge, metric, scrape } from './edge-helper.ts'

function backlog(options: { windowMs?: number; maxUsers?: number } = {}) {
  let now = 0
  const tracker = new OfflineBacklog({ ...options, now: () => now })
  return { tracker, advance: (ms: number) => (now += ms) }
}

t.test('the latest report per user counts, and zero clears it', async (t) => {
  const { tracker } = backlog()
  tracker.report('alice', 40)
  tracker.report('bob', 2)
  t.equal(tracker.total(), 42)
  tracker.report('alice', 10)
  t.equal(tracker.total(), 12, 'a newer report replaces the older one')
  tracker.report('alice', 0)
  t.equal(tracker.total(), 2)
  t.equal(tracker.users, 1, 'a zero needs no entry')
})

t.test('reports older than the window stop counting', async (t) => {
  const { tracker, advance } = backlog({ windowMs: 300000 })
  tracker.report('alice', 5)
  advance(200000)
  tracker.report('bob', 7)
  t.equal(tracker.total(), 12)
  advance(100000)
  t.equal(tracker.total(), 7, "alice's report is 5 minutes old")
  tracker.report('bob', 3)
  advance(299999)
  t.equal(tracker.total(), 3, 'a refreshed report lives on')
  advance(1)
  t.equal(tracker.total(), 0)
  t.equal(tracker.users, 0)
})

t.test('memory is bounded: past maxUsers the least recently reporting user goes', async (t) => {
  const { tracker, advance } = backlog({ maxUsers: 1000 })
  for (let i = 0; i < 5000; i++) {
    tracker.report(`user-${i}`, 1)
    advance(1)
  }
  t.equal(tracker.users, 1000)
  t.equal(tracker.total(), 1000, 'the sum follows the evictions')
  tracker.report('user-4000', 11) // refreshes one of the kept users
  tracker.report('newcomer', 1)
  t.equal(tracker.users, 1000)
  t.equal(tracker.total(), 1000 - 1 + 11 + 1 - 1)
})

t.test('reports from ingestion requests reach /api/health and the metrics', async (t) => {
  const h = await buildEdge(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice', 'bob'])
  const alice = await h.token('alice')
  const bob = await h.token('bob')
  t.equal((await h.post(alice, undefined, { 'x-client-queue-depth': '120' })).statusCode, 200)
  t.equal((await h.post(bob, undefined, { 'x-client-queue-depth': '30' })).statusCode, 200)
  t.equal((await h.post(alice, undefined, { 'x-client-queue-depth': '100' })).statusCode, 200)
  const health = (await h.app.inject({ method: 'GET', url: '/api/health' })).json()
  t.same(health.offlineQueue, { backlog: 130 }, 'latest per user: 100 + 30')
  t.type(health.progressBatchLagMs, 'number')
  t.ok(health.progressBatchLagMs > 0, 'the smoothed latency of the calls just made')
  const metrics = await scrape(h.app)
  t.equal(metric(metrics, 'client_offline_backlog_events'), 130)
  t.equal(metric(metrics, 'client_offline_backlog_users'), 2)
})

t.test('a malformed X-Client-Queue-Depth is a coded 400 and writes nothing', async (t) => {
  const h = await buildEdge(t)
  const alice = await h.token('alice')
  for (const value of ['-1', 'lots', '1.5', '99999999999']) {
    const res = await h.post(alice, undefined, { 'x-client-queue-depth': value })
    t.equal(res.statusCode, 400, `"${value}"`)
    t.same(res.json(), {
      statusCode: 400,
      code: 'INVALID_HEADER',
      error: 'Bad Request',
      message: 'Request header is invalid: X-Client-Queue-Depth must be a non-negative integer',
    })
  }
  const [row] = await h.sql<{ count: number }[]>`select count(*)::int as count from progress_events`
  t.equal(row!.count, 0)
  const read = await h.app.inject({
    method: 'GET',
    url: '/api/v1/progress/me',
    headers: { authorization: `Bearer ${alice}`, 'x-client-queue-depth': 'lots' },
  })
  t.equal(read.statusCode, 200, 'the header only matters on ingestion routes')
})
