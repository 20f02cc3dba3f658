// X-Client-Queue-Lag against a really slow database: the ingestion procedures
// wait on a lock held by another connection, the advice rises above 0, and it
// falls back to 0 once calls are fast again.
import t from 'tap'
import { seedOrg } from '../helper.ts'
import { buildEdge, lockAssignments, metric, scrape, sleep } from './edge-helper.ts'

const SLO_MS = 50
const HOLD_MS = 500

t.test('the lag header rises while the database is slow and falls back to 0 after', async (t) => {
  const h = await buildEdge(t, { config: { LAG_SLO_MS: SLO_MS } })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const alice = await h.token('alice')

  const warm = await h.post(alice)
  t.equal(warm.statusCode, 200)
  t.equal(warm.headers['x-client-queue-lag'], '0', 'a fast database means no extra delay')

  const rising: number[] = []
  for (let i = 0; i < 3; i++) {
    const lock = await lockAssignments(h.sql)
    const pending = h.post(alice)
    await sleep(HOLD_MS)
    await lock.release()
    const res = await pending
    t.equal(res.statusCode, 200, 'slow calls still succeed')
    rising.push(Number(res.headers['x-client-queue-lag']))
  }
  t.ok(rising[0]! > 0, `one call of ~${HOLD_MS} ms against an SLO of ${SLO_MS} ms raises the advice: ${rising}`)
  t.ok(rising[2]! > rising[0]!, `more slow calls raise it further: ${rising}`)
  t.ok(rising.every((value) => value <= 30000))

  const health = await h.app.inject({ method: 'GET', url: '/api/health' })
  t.ok(health.json().progressBatchLagMs > SLO_MS, `health shows the smoothed latency: ${health.json().progressBatchLagMs}`)
  // Contract section 4: every response carries the advice, not only ingestion's.
  const unknown = await h.app.inject({ method: 'GET', url: '/api/no-such-route' })
  for (const [name, res] of [['health', health], ['a 404', unknown]] as const) {
    t.ok(Number(res.headers['x-client-queue-lag']) > 0, `${name} carries the raised advice too: ${res.headers['x-client-queue-lag']}`)
  }
  t.ok(metric(await scrape(h.app), 'ingest_queue_lag_ms')! > 0, 'and so do the metrics')

  const falling: number[] = []
  for (let i = 0; i < 40 && falling.at(-1) !== 0; i++) {
    const res = await h.post(alice)
    falling.push(Number(res.headers['x-client-queue-lag']))
  }
  t.equal(falling.at(-1), 0, `fast calls bring the advice back to 0: ${falling}`)
  t.ok(falling[0]! <= rising[2]!, 'it only falls once calls are fast')
  const slowest = metric(await scrape(h.app), 'ingest_call_duration_seconds_bucket{le="0.25",stream="progress"}')
  const total = metric(await scrape(h.app), 'ingest_call_duration_seconds_count{stream="progress"}')
  t.ok(total! - slowest! >= 3, `the histogram saw the three slow calls: ${total! - slowest!}`)
})

t.test('the lag header is on every response: ingestion errors, reads and unknown routes', async (t) => {
  const h = await buildEdge(t)
  const alice = await h.token('alice')
  const bad = await h.post(alice, { sentAt: 'no events' })
  t.equal(bad.statusCode, 400)
  t.equal(bad.headers['x-client-queue-lag'], '0')
  const unauthorized = await h.app.inject({ method: 'POST', url: '/api/analytics/events', payload: {} })
  t.equal(unauthorized.statusCode, 401)
  t.equal(unauthorized.headers['x-client-queue-lag'], '0')
  const read = await h.app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization: `Bearer ${alice}` } })
  t.equal(read.headers['x-client-queue-lag'], '0')
  const wrongMethod = await h.app.inject({ method: 'DELETE', url: '/api/client/progress/batch' })
  t.equal(wrongMethod.statusCode, 405)
  t.equal(wrongMethod.headers['x-client-queue-lag'], '0')
})
