// Graceful shutdown drains in-flight requests before the pool closes, and
// answers the clients on its keep-alive sockets rather than resetting them.
import http from 'node:http'
import t, { type Test } from 'tap'
import { startApiOrExit } from '../../src/api/server.ts'
import { mintToken } from '../../src/auth/tokens.ts'
import { loadConfig } from '../../src/config.ts'
import type { Sql } from '../../src/db/pool.ts'
import { build, progressEvent, seedOrg, TEST_SECRET, testDatabase, testPool } from '../helper.ts'
import { eventually } from './edge-helper.ts'

/** Whether a request of this database is waiting on a lock, within 10 s. */
const waitingOnLock = (sql: Sql) =>
  eventually(async () => (await sql`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`).length > 0, 10_000)

/** An app closing while one ingestion request is held in flight on a lock; release() lets it finish. */
async function closingWithOneInFlight(t: Test, beforeClose: (port: number) => Promise<void> = async () => {}) {
  const h = await build(t)
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const token = await h.token('alice')
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = h.app.server.address() as { port: number }
  await beforeClose(port)

  const holder = await h.sql.reserve()
  await holder`begin`
  await holder`lock table progress_events in access exclusive mode`
  const request = fetch(`http://127.0.0.1:${port}/api/client/progress/batch`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ events: [progressEvent()] }),
  })
  t.ok(await waitingOnLock(h.sql), 'the request waits on the lock')
  const closed = h.app.close()
  const release = () => holder`rollback`.then(() => holder.release())
  return { h, request, closed, release }
}

t.test('close() waits for an in-flight ingestion call, which still succeeds, and not for its idle socket', async (t) => {
  const { h, request, closed, release } = await closingWithOneInFlight(t)
  setTimeout(release, 300)
  const res = await request
  const answeredAt = Date.now()
  await closed
  // Its keep-alive socket was busy when closing began: the close must not wait out keepAliveTimeout.
  t.ok(Date.now() - answeredAt < 30_000, `closed ${Date.now() - answeredAt} ms after the answer`)
  t.equal(res.status, 200, 'the in-flight request completed')
  t.equal(res.headers.get('connection'), 'close', 'and said its socket ends')
  t.equal((await res.json()).accepted, 1)
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from progress_events`
  t.equal(row?.n, 1, 'and its event is durable')
})

t.test('a request on an idle keep-alive socket while closing: a coded 503 with Retry-After, not a reset', async (t) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const get = (port: number, path: string) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; reused: boolean }>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
        let body = ''
        res.on('data', (chunk) => (body += chunk))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, reused: req.reusedSocket }))
      })
      req.on('error', reject)
    })
  let port = 0
  const { request, closed, release } = await closingWithOneInFlight(t, async (listening) => {
    port = listening
    t.equal((await get(port, '/api/health')).status, 200, 'a keep-alive socket, idle when closing begins')
  })
  const late = await get(port, '/api/v1/progress/me')
  t.ok(late.reused, 'sent on that socket')
  t.equal(late.status, 503)
  t.match(JSON.parse(late.body), { code: 'OVERLOADED' })
  t.equal(late.headers['retry-after'], '2')
  t.equal(late.headers.connection, 'close')
  await release()
  t.equal((await request).status, 200)
  await closed
})

t.test('a shutdown stops waiting for a request with no deadline of its own (an admin write on a lock) after its deadline', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const config = loadConfig({ DATABASE_URL: url, AUTH_JWT_SECRET: TEST_SECRET, PORT: '0', LOG_LEVEL: 'silent' })
  const api = await startApiOrExit(config, { url, embedded: false, release: async () => {} })
  const holder = await sql.reserve()
  t.teardown(async () => {
    await holder`rollback`
    holder.release()
  })
  await holder`begin`
  await holder`lock table courses in access exclusive mode`
  const token = await mintToken(TEST_SECRET, { userId: 'ada', orgId: 'org-a', role: 'admin' })
  const write = fetch(`${api.url}/api/v1/orgs/org-a/courses`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ courses: [{ courseId: 'c1', lessonCount: 3 }] }),
  }).then((res) => res.status, (error: Error) => error.message)
  t.ok(await waitingOnLock(sql), 'the write waits on the lock')
  const started = Date.now()
  await api.close(500)
  // 0.5 s, then the pool's 5 s to end its queries; without the deadline, as long as the lock is held.
  t.ok(Date.now() - started < 10_000, `closed ${Date.now() - started} ms after it began`)
  t.equal(await write, 'fetch failed', 'the cut request saw its connection close')
})
