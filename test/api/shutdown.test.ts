// Graceful shutdown drains in-flight requests before the pool closes.
import t from 'tap'
import { build, progressEvent, seedOrg } from '../helper.ts'
import { eventually } from './edge-helper.ts'

t.test('close() waits for an in-flight ingestion call, which still succeeds, and not for its idle socket', async (t) => {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const token = await h.token('alice')
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = h.app.server.address() as { port: number }

  // Hold a lock the write path needs, so the request is in flight when we close.
  const holder = await h.sql.reserve()
  await holder`begin`
  await holder`lock table progress_events in access exclusive mode`
  const request = fetch(`http://127.0.0.1:${port}/api/client/progress/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ events: [progressEvent()] }),
  })
  const waiting = await eventually(async () =>
    (await h.sql`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`).length > 0, 10_000)
  t.ok(waiting, 'the request waits on the lock')
  const closed = h.app.close()
  setTimeout(() => holder`rollback`.then(() => holder.release()), 300)
  const res = await request
  const answeredAt = Date.now()
  await closed
  // Its keep-alive socket was busy when closing began: the close must not wait out keepAliveTimeout.
  t.ok(Date.now() - answeredAt < 30_000, `closed ${Date.now() - answeredAt} ms after the answer`)
  t.equal(res.status, 200, 'the in-flight request completed')
  t.equal((await res.json()).accepted, 1)
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from progress_events`
  t.equal(row?.n, 1, 'and its event is durable')
})
