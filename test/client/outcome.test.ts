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

/** The bodies the API really answers with (src/errors.ts, src/ingest/validate.ts). */
const api = (status: number, code: string, message: string) => ({ statusCode: status, code, error: 'x', message })
const foreignUser = api(403, 'FOREIGN_USER', 'Not allowed: learner tokens may only send events for their own user')
const tooLarge = api(413, 'PAYLOAD_TOO_LARGE', 'Request body is larger than 262144 bytes')

t.test('a chunk is halved on 413, 400 TOO_MANY_EVENTS and the API\'s 403 for another user', async (t) => {
  t.same(classify(400, api(400, 'TOO_MANY_EVENTS', 'A batch may hold at most 100 events'), 150), { action: 'split' })
  t.same(classify(413, tooLarge, 2), { action: 'split' })
  t.same(classify(413, undefined, 2), { action: 'split' }, "a proxy's smaller limit: smaller chunks may pass")
  t.same(classify(403, foreignUser, 2), { action: 'split' })
})

t.test('a lone event is dropped only when the API blames it', async (t) => {
  t.same(classify(403, foreignUser, 1), { action: 'drop', code: 'FOREIGN_USER', message: foreignUser.message })
  t.same(classify(413, tooLarge, 1), { action: 'drop', code: 'PAYLOAD_TOO_LARGE', message: tooLarge.message })
})

t.test('a refusal no event explains keeps the events and backs off, at any chunk size', async (t) => {
  const answers: [number, unknown][] = [
    [400, api(400, 'INVALID_BODY', 'body/sentAt must match format')], // a bad deploy, version skew
    [400, api(400, 'INVALID_JSON', 'Unexpected end of JSON input')], // a proxy cutting the body
    [400, api(400, 'INVALID_HEADER', 'X-Client-Queue-Depth must be a non-negative integer')],
    [400, undefined], // nginx's or a WAF's HTML page
    [403, api(403, 'FORBIDDEN', 'blocked by gateway')],
    [403, { code: 'FORBIDDEN' }],
    [403, undefined],
    [413, undefined], // a proxy's limit below the event's size: an operator must fix it
    [413, api(413, 'SOMETHING_ELSE', 'x')],
  ]
  for (const [status, body] of answers) {
    t.same(classify(status, body, 1), { action: 'failed' }, `${status} ${JSON.stringify(body)} for one event`)
    if (status !== 413) t.same(classify(status, body, 50), { action: 'failed' }, `${status} ${JSON.stringify(body)} for 50 events`)
  }
  t.same(classify(400, api(400, 'TOO_MANY_EVENTS', 'A batch may hold at most 0 events'), 1), { action: 'failed' }, 'a chunk of one cannot be smaller')
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
