// Per-user rate limit on ingestion: RATE_LIMIT_BATCHES_PER_SECOND per token
// `sub` in a 1 s window, one budget over the four routes, shared through Redis
// by several API processes, and a local fallback while Redis is unreachable.
import t from 'tap'
import { analyticsEvent, progressEvent, seedOrg } from '../helper.ts'
import { buildEdge, eventually, metric, REDIS_URL, redisPrefix, scrape, sleep, tcpRelay, type EdgeHarness } from './edge-helper.ts'

const LIMIT = { RATE_LIMIT_BATCHES_PER_SECOND: 5 }

// Requests are sent together: the limit is checked before the body is read,
// so they all reach it within milliseconds, well inside one 1 s window even on
// a loaded machine; with the token checked synchronously, in the same tick,
// which is what once made all six read the sixth count (FallbackCounter.incr).
async function atOnce(h: EdgeHarness, token: string, count: number) {
  return Promise.all(Array.from({ length: count }, () => h.post(token)))
}
const statuses = (responses: { statusCode: number }[]) => responses.map((res) => res.statusCode).sort()

t.test('the sixth batch in a second gets 429 and the next second is accepted again', async (t) => {
  const h = await buildEdge(t, { config: LIMIT })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice', 'bob'])
  const alice = await h.token('alice')

  const six = await atOnce(h, alice, 6)
  t.same(statuses(six), [200, 200, 200, 200, 200, 429], 'five accepted, the sixth refused')
  const accepted = six.filter((res) => res.statusCode === 200)
  t.same(accepted.map((res) => res.headers['x-ratelimit-remaining']).sort(), ['0', '1', '2', '3', '4'], 'remaining counts down')
  t.ok(accepted.every((res) => res.headers['x-ratelimit-limit'] === '5'))

  const sixth = six.find((res) => res.statusCode === 429)!
  t.same(sixth.json(), { statusCode: 429, code: 'RATE_LIMITED', error: 'Too Many Requests', message: 'Rate limit exceeded: retry in 1 second' })
  t.equal(sixth.headers['retry-after'], '1')
  t.equal(sixth.headers['x-ratelimit-limit'], '5')
  t.equal(sixth.headers['x-ratelimit-remaining'], '0')
  t.ok(sixth.headers['x-ratelimit-reset'], 'reset header')
  t.equal(sixth.headers['x-client-queue-lag'], '0', 'the lag header is on 429s too')
  t.ok(sixth.headers['x-request-id'])

  // Another user has a budget of their own.
  t.equal((await h.post(await h.token('bob'))).statusCode, 200)

  await sleep(Number(sixth.headers['retry-after']) * 1000 + 50)
  const next = await h.post(alice)
  t.equal(next.statusCode, 200, 'accepted again in the next second')
  t.equal(next.headers['x-ratelimit-remaining'], '4', 'with a fresh budget')

  const [row] = await h.sql<{ count: number }[]>`select count(*)::int as count from progress_events`
  t.equal(row!.count, 7, 'the refused batch wrote nothing')
  t.equal(metric(await scrape(h.app), 'rate_limited_total'), 1)

  // User ids are an org's own: alice of org-a and alice of org-b (this
  // alice's token names no org) are other users, with budgets of their own.
  for (const orgId of ['org-a', 'org-b']) {
    const other = await atOnce(h, await h.token('alice', { orgId }), 5)
    t.same(statuses(other), [200, 200, 200, 200, 200], `alice of ${orgId}`)
  }
})

t.test('one budget covers all four ingestion routes, and other routes are not limited', async (t) => {
  const h = await buildEdge(t, { config: LIMIT })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  const alice = await h.token('alice')
  const sends = await Promise.all([
    h.post(alice, { events: [progressEvent()] }, {}, '/api/client/progress/batch'),
    h.post(alice, progressEvent(), {}, '/api/client/progress/lesson'),
    h.post(alice, { events: [analyticsEvent()] }, {}, '/api/analytics/events/batch'),
    h.post(alice, analyticsEvent(), {}, '/api/analytics/events'),
    h.post(alice, { events: [progressEvent()] }, {}, '/api/client/progress/batch'),
    h.post(alice, progressEvent(), {}, '/api/client/progress/lesson'),
    h.post(alice, { events: [analyticsEvent()] }, {}, '/api/analytics/events/batch'),
    h.post(alice, analyticsEvent(), {}, '/api/analytics/events'),
  ])
  t.same(statuses(sends), [200, 200, 200, 200, 200, 429, 429, 429], 'five in all, whichever the routes')
  t.ok(sends.filter((res) => res.statusCode === 429).every((res) => res.json().code === 'RATE_LIMITED'))
  const reads = await Promise.all(
    Array.from({ length: 8 }, () => h.app.inject({ method: 'GET', url: '/api/v1/progress/me', headers: { authorization: `Bearer ${alice}` } })),
  )
  t.ok(reads.every((res) => res.statusCode === 200 && res.headers['x-ratelimit-limit'] === undefined), 'reads are not rate limited')
})

t.test('a throttled request is refused before its body is parsed', async (t) => {
  const h = await buildEdge(t, { config: LIMIT })
  const alice = await h.token('alice')
  const malformed = () =>
    h.app.inject({
      method: 'POST',
      url: '/api/client/progress/batch',
      headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' },
      payload: '{"events": [ not json',
    })
  const responses = await Promise.all(Array.from({ length: 6 }, malformed))
  t.same(statuses(responses), [400, 400, 400, 400, 400, 429], 'the limit answers first: no parsing work for a throttled client')
})

t.test('with REDIS_URL two API instances share one budget', async (t) => {
  const prefix = redisPrefix()
  const a = await buildEdge(t, { config: { ...LIMIT, REDIS_URL }, edge: { redisKeyPrefix: prefix } })
  const b = await buildEdge(t, { config: { ...LIMIT, REDIS_URL }, edge: { redisKeyPrefix: prefix }, databaseUrl: a.url })
  await seedOrg(a.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  t.equal(metric(await scrape(a.app), 'rate_limit_redis_fallback'), 0, 'instance a counts in Redis')
  t.equal(metric(await scrape(b.app), 'rate_limit_redis_fallback'), 0, 'instance b counts in Redis')
  const alice = await a.token('alice')

  // Three through each: alone, each instance would accept all of its three.
  const responses = await Promise.all([a.post(alice), a.post(alice), a.post(alice), b.post(alice), b.post(alice), b.post(alice)])
  t.same(statuses(responses), [200, 200, 200, 200, 200, 429], 'one budget of five across both instances')
  const remaining = responses.filter((res) => res.statusCode === 200).map((res) => res.headers['x-ratelimit-remaining'])
  t.same(remaining.sort(), ['0', '1', '2', '3', '4'], 'each instance sees the counts of the other')
  t.equal(responses.find((res) => res.statusCode === 429)!.json().code, 'RATE_LIMITED')
})

t.test('Redis unreachable: ingestion keeps working on a local limit, says so, and returns to Redis', async (t) => {
  const prefix = redisPrefix()
  const relay = await tcpRelay(t, Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname)
  const viaRelay = `redis://127.0.0.1:${relay.port}`
  const h = await buildEdge(t, { config: { ...LIMIT, REDIS_URL: viaRelay }, edge: { redisKeyPrefix: prefix } })
  // A second instance straight on Redis, to show when counts are (not) shared.
  const peer = await buildEdge(t, { config: { ...LIMIT, REDIS_URL }, edge: { redisKeyPrefix: prefix }, databaseUrl: h.url })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice', 'bob', 'carol'])
  t.equal(metric(await scrape(h.app), 'rate_limit_redis_fallback'), 0)

  await relay.cut()
  const fellBack = await eventually(async () => metric(await scrape(h.app), 'rate_limit_redis_fallback') === 1)
  t.ok(fellBack, 'the fallback metric reads 1')
  const warning = h.log.lines.find((line) => line.level === 40 && String(line.msg).includes('Redis unreachable'))
  t.ok(warning, 'a warning is logged')
  t.equal(metric(await scrape(h.app), 'rate_limit_redis_fallbacks_total'), 1)

  const alice = await h.token('alice')
  const during = await atOnce(h, alice, 6)
  t.same(statuses(during), [200, 200, 200, 200, 200, 429], 'ingestion keeps working, still limited, locally')
  const peerRes = await peer.post(alice)
  t.equal(peerRes.statusCode, 200, 'the local counts are not in Redis')
  t.equal(peerRes.headers['x-ratelimit-remaining'], '4')

  await relay.restore()
  const back = await eventually(async () => metric(await scrape(h.app), 'rate_limit_redis_fallback') === 0, 8000)
  t.ok(back, 'back on Redis once it is reachable')
  t.ok(h.log.lines.some((line) => line.level === 30 && String(line.msg).includes('Redis reachable again')), 'recovery is logged')

  const bob = await h.token('bob')
  const shared = await Promise.all([h.post(bob), h.post(bob), h.post(bob), peer.post(bob), peer.post(bob), peer.post(bob)])
  t.same(statuses(shared), [200, 200, 200, 200, 200, 429], 'counts are shared again')
})

t.test('Redis that stops answering on a live connection: local limit, then back to Redis', async (t) => {
  const prefix = redisPrefix()
  const relay = await tcpRelay(t, Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname)
  const h = await buildEdge(t, { config: { ...LIMIT, REDIS_URL: `redis://127.0.0.1:${relay.port}` }, edge: { redisKeyPrefix: prefix } })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice', 'bob'])
  const alice = await h.token('alice')
  t.equal((await h.post(alice)).statusCode, 200)
  t.equal(metric(await scrape(h.app), 'rate_limit_redis_fallback'), 0)

  relay.stall()
  const during = await atOnce(h, alice, 5)
  t.same(statuses(during), [200, 200, 200, 200, 200], 'a hung Redis costs one command timeout, not the request')
  t.equal(metric(await scrape(h.app), 'rate_limit_redis_fallback'), 1)
  t.ok(h.log.lines.some((line) => line.level === 40 && String(line.msg).includes('Redis unreachable')))

  relay.resume()
  await sleep(1100) // the retry interval
  const bob = await h.token('bob')
  t.equal((await h.post(bob)).statusCode, 200)
  t.equal(metric(await scrape(h.app), 'rate_limit_redis_fallback'), 0, 'Redis answers again: shared again')
  const remaining = await h.post(bob)
  t.equal(remaining.headers['x-ratelimit-remaining'], '3', 'counting in Redis')
})

t.test('Redis down from the start: the API starts and limits locally', async (t) => {
  const relay = await tcpRelay(t, Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname)
  await relay.cut()
  const h = await buildEdge(t, { config: { ...LIMIT, REDIS_URL: `redis://127.0.0.1:${relay.port}` }, edge: { redisKeyPrefix: redisPrefix() } })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 2 }], ['alice'])
  t.equal(metric(await scrape(h.app), 'rate_limit_redis_fallback'), 1)
  t.ok(h.log.lines.some((line) => line.level === 40 && String(line.msg).includes('Redis unreachable')))
  const alice = await h.token('alice')
  t.same(statuses(await atOnce(h, alice, 6)), [200, 200, 200, 200, 200, 429])
})
