import t from 'tap'
import { evictionPlan } from '../../src/client/drop-policy.ts'
import { classify } from '../../src/client/outcome.ts'

t.test('200: acknowledged when every event is accounted for', async (t) => {
  const rejected = [{ index: 2, eventId: 'e', code: 'too_old', message: 'old' }]
  t.same(classify(200, { accepted: 2, duplicates: 1, deferred: 1, rejected }, 5), { action: 'ack', rejected })
  t.same(classify(200, { accepted: 0, duplicates: 3, deferred: 0, rejected: [] }, 3), { action: 'ack', rejected: [] })
})

t.test('200 that does not account for the batch deletes nothing', async (t) => {
  t.same(classify(200, { accepted: 2, duplicates: 0, deferred: 0, rejected: [] }, 3), { action: 'failed' }, 'one event missing')
  t.same(classify(200, undefined, 3), { action: 'failed' }, 'not JSON (a proxy page)')
  t.same(classify(200, { accepted: 1, duplicates: 0, deferred: 0, rejected: [{ index: 5 }] }, 2), { action: 'failed' }, 'index out of range')
  t.same(classify(200, { accepted: 0, duplicates: 0, deferred: 0, rejected: [{ index: 0 }, { index: 0 }] }, 2), { action: 'failed' }, 'index twice')
  t.same(classify(200, { accepted: '3', duplicates: 0, deferred: 0, rejected: [] }, 3), { action: 'failed' })
})

t.test('400, 403 and 413 split the chunk; the code is kept for a lone event', async (t) => {
  t.same(classify(400, { statusCode: 400, code: 'TOO_MANY_EVENTS', message: 'at most 100' }, 150), { action: 'split', code: 'TOO_MANY_EVENTS', message: 'at most 100' })
  t.equal(classify(403, { code: 'FORBIDDEN', message: 'x' }, 2).action, 'split')
  t.same(classify(413, undefined, 2), { action: 'split', code: 'HTTP_413', message: '' })
})

t.test('429 and 503 are throttling; anything else backs off', async (t) => {
  t.same(classify(429, {}, 1), { action: 'throttled' })
  t.same(classify(503, {}, 1), { action: 'throttled' })
  for (const status of [401, 404, 415, 500, 502, 504]) t.same(classify(status, {}, 1), { action: 'failed' }, String(status))
})

t.test('storage cap: analytics go before progress, nothing below the cap', async (t) => {
  t.same(evictionPlan({ progress: 10, analytics: 10 }, 30), { progress: 0, analytics: 0 })
  t.same(evictionPlan({ progress: 40, analytics: 30 }, 50), { progress: 0, analytics: 20 })
  t.same(evictionPlan({ progress: 60, analytics: 10 }, 50), { progress: 10, analytics: 10 })
  t.same(evictionPlan({ progress: 70, analytics: 0 }, 50), { progress: 20, analytics: 0 })
})
