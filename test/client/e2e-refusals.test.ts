// Refusals that must not cost events, in real Chromium against the real API:
// answers no event explains (a proxy's 400, a gateway's 403) keep every event,
// halving is paced and cut to what the server takes, a far Retry-After or
// backoff neither holds the queues for a day nor spins, and bad input fails
// at the call.
import t, { type Test } from 'tap'
import type { BrowserContext, Page, Route } from 'playwright-core'
import { mintToken } from '../../src/auth/tokens.ts'
import type { IngestClientOptions, IngestStats } from '../../src/client/types.ts'
import { TEST_SECRET } from '../helper.ts'
import { launchBrowser, openPage, resent, startSite, storedCounts, trackMany, waitFor, type PageWindow, type Site } from './browser.ts'

const browser = await launchBrowser(t)
const BATCH_ROUTES = '**/api/{client/progress,analytics/events}/batch'

async function newContext(t: Test): Promise<BrowserContext> {
  const context = await browser.newContext()
  t.teardown(() => context.close())
  return context
}
async function newPage(t: Test, site: Site, options: Partial<IngestClientOptions> = {}, token?: string): Promise<Page> {
  return openPage(await newContext(t), site, token ?? (await site.token('alice')), options)
}
const stats = (page: Page): Promise<IngestStats> => page.evaluate(() => (window as unknown as PageWindow).client.getQueueStats())
const total = async (site: Site) => {
  const counts = await storedCounts(site.sql)
  return counts.progress + counts.analytics
}
const json = (status: number, code: string, message: string) => ({
  status, contentType: 'application/json', body: JSON.stringify({ statusCode: status, code, error: 'x', message }),
})

/** Answers every batch request with fault() while it returns one, for ms; counts what it answered. */
async function faultFor(page: Page, ms: number, fault: () => Parameters<Route['fulfill']>[0]): Promise<{ refused: number }> {
  const until = Date.now() + ms
  const seen = { refused: 0 }
  await page.route(BATCH_ROUTES, (route) => {
    if (Date.now() >= until) return route.continue()
    seen.refused++
    return route.fulfill(fault())
  })
  return seen
}

t.test('a whole-request 400 that blames no event, for 3 s: every event is kept, and retried with backoff', async (t) => {
  const site = await startSite(t)
  const page = await newPage(t, site)
  // A bad deploy's coded 400 on one queue, a proxy's HTML page on the other.
  let n = 0
  const fault = await faultFor(page, 3000, () =>
    n++ % 2 ? json(400, 'INVALID_BODY', 'body/sentAt must match format') : { status: 400, contentType: 'text/html', body: '<h1>400 Bad Request</h1>' },
  )
  await trackMany(page, { progress: 40, analytics: 40 })
  await waitFor(async () => (await total(site)) >= 80, 30000, 'all 80 events after the 400s stop')
  t.same(await storedCounts(site.sql), { progress: 40, analytics: 40, distinct: 80 }, 'every event stored once')
  const after = await stats(page)
  t.equal(after.progress.rejected + after.analytics.rejected, 0, 'none dropped as rejected')
  t.same(await page.evaluate(() => (window as unknown as PageWindow).rejections), [])
  // Before: each queue halved its 40 events down to single ones, 158 requests in 3 s.
  t.ok(fault.refused <= 8, `${fault.refused} requests refused in the 3 s (backoff, not halving)`)
  t.same(resent(site.recorder), [])
})

t.test("a gateway's 403 while every event names a userId (a service token): nothing dropped", async (t) => {
  const site = await startSite(t)
  const service = await mintToken(TEST_SECRET, { userId: 'importer', orgId: 'org-a', role: 'service' })
  const page = await newPage(t, site, {}, service)
  const fault = await faultFor(page, 3000, () => json(403, 'FORBIDDEN', 'blocked by gateway'))
  const ids = await page.evaluate(() => {
    const { client } = window as unknown as PageWindow
    return Promise.all(Array.from({ length: 30 }, (_, i) =>
      client.trackProgress({ userId: i % 2 ? 'alice' : 'bob', courseId: 'course-1', lessonId: `lesson-${(i % 5) + 1}`, type: 'lesson_progress', progress: i })))
  })
  await waitFor(async () => (await total(site)) >= 30, 30000, 'the 30 events after the 403s stop')
  t.ok(fault.refused >= 1, `the gateway refused ${fault.refused} requests`)
  t.same(await storedCounts(site.sql), { progress: 30, analytics: 0, distinct: 30 })
  const stored = await site.sql<{ id: string }[]>`select event_id::text as id from progress_events`
  t.same(new Set(stored.map((row) => row.id)), new Set(ids))
  t.equal((await stats(page)).progress.rejected, 0)
  t.same(resent(site.recorder), [])
})

t.test('maxBatchEvents above the server limit: after a split every chunk is cut to the size that worked', async (t) => {
  const site = await startSite(t)
  const page = await newPage(t, site, { maxBatchEvents: 1000 })
  const sizes: { events: number; at: number }[] = []
  page.on('request', (request) => {
    if (request.url().endsWith('/batch')) sizes.push({ events: (JSON.parse(request.postData() ?? '{}') as { events: unknown[] }).events.length, at: Date.now() })
  })
  const ids = await trackMany(page, { progress: 600 })
  await waitFor(async () => (await total(site)) >= 600, 60000, 'all 600 events')
  t.same(await storedCounts(site.sql), { progress: 600, analytics: 0, distinct: 600 })
  t.equal(ids.length, 600)
  const statuses = site.recorder.requests.map((request) => request.status)
  const firstOk = statuses.indexOf(200)
  t.same(statuses.slice(0, firstOk + 1), [400, 400, 400, 200], '600 -> 300 -> 150 -> 75 events')
  const worked = sizes[firstOk]!.events
  // Before: 75, 75, then the other 150 of the halved 300 again.
  t.same(sizes.slice(firstOk).filter((size) => size.events > worked), [], `no chunk above ${worked} events after it worked`)
  t.equal(statuses.filter((status) => status === 400).length, 3)
  // Halvings are paced: each next half waits a flush interval (at least 1 s).
  for (let i = 1; i <= firstOk; i++) t.ok(sizes[i]!.at - sizes[i - 1]!.at >= 900, `halving ${i} came ${sizes[i]!.at - sizes[i - 1]!.at} ms after the refusal`)
  t.equal((await stats(page)).progress.rejected, 0)
  t.same(resent(site.recorder), [])
})

t.test('a lone event over the server limit (413) is dropped; the events around it arrive', async (t) => {
  const site = await startSite(t, { MAX_BATCH_BYTES: 8192 })
  const page = await newPage(t, site)
  const before = await trackMany(page, { analytics: 20, tag: 'before' })
  const big = await page.evaluate(() => (window as unknown as PageWindow).client.track('big.one', { s: 'x'.repeat(10000) }))
  const after = await trackMany(page, { analytics: 20, tag: 'after' })
  await waitFor(async () => (await stats(page)).analytics.pending === 0, 40000, 'the queue to drain')
  t.same(await storedCounts(site.sql), { progress: 0, analytics: 40, distinct: 40 })
  const rejections = await page.evaluate(() => (window as unknown as PageWindow).rejections)
  t.same(rejections.map(({ eventId, code }) => ({ eventId, code })), [{ eventId: big, code: 'PAYLOAD_TOO_LARGE' }])
  t.equal(before.length + after.length, 40)
  t.same(resent(site.recorder), [])
})

t.test('Retry-After: 86400 (a CDN maintenance page) holds the queues for 60 s, not a day', async (t) => {
  const site = await startSite(t)
  const context = await newContext(t)
  await context.clock.install() // runs in real time until fast-forwarded
  const page = await openPage(context, site, await site.token('alice'))
  // Each queue's first request is refused.
  const refused = new Set<string>()
  await page.route(BATCH_ROUTES, (route) => {
    if (refused.has(route.request().url())) return route.continue()
    refused.add(route.request().url())
    return route.fulfill({ ...json(503, 'OVERLOADED', 'maintenance'), headers: { 'retry-after': '86400' } })
  })
  await trackMany(page, { progress: 5, analytics: 5 })
  await waitFor(async () => refused.size === 2, 10000, 'both 503s')
  await waitFor(async () => Object.values(await stats(page)).every((queue) => queue.retries === 1), 10000, 'the 503s to reach the client')
  const held = await stats(page)
  const waits = [held.progress.nextFlushInMs ?? 0, held.analytics.nextFlushInMs ?? 0]
  t.ok(waits.every((ms) => ms > 50000 && ms <= 60000), `both queues wait ${waits.join(' and ')} ms`)
  t.equal(await total(site), 0, 'nothing sent before Retry-After')
  await page.clock.fastForward(61000)
  await waitFor(async () => (await total(site)) >= 10, 15000, 'the 10 events once the 60 s are over')
  t.same(await storedCounts(site.sql), { progress: 5, analytics: 5, distinct: 10 })
})

t.test('a wait longer than setTimeout can take does not fire at once and spin', async (t) => {
  const site = await startSite(t)
  const context = await newContext(t)
  await context.addInitScript(() => {
    const w = window as unknown as { transactions: number }
    w.transactions = 0
    const transaction = IDBDatabase.prototype.transaction
    IDBDatabase.prototype.transaction = function (this: IDBDatabase, ...args: Parameters<IDBDatabase['transaction']>) {
      w.transactions++
      return transaction.apply(this, args)
    }
  })
  // A backoff between 2^31 and 2^32 ms (setTimeout's int32 delay wraps to a
  // negative one, so it fires at once), as a far deadline stored by any means gives.
  const far = 2 ** 32 - 1000
  const page = await openPage(context, site, await site.token('alice'), { baseBackoffMs: far, maxBackoffMs: far })
  await page.route(BATCH_ROUTES, (route) => route.fulfill(json(500, 'INTERNAL', 'Internal server error')))
  await trackMany(page, { progress: 5 })
  await waitFor(async () => (await stats(page)).progress.retries >= 1, 10000, 'the failed attempt')
  const counted = () => page.evaluate(() => (window as unknown as { transactions: number }).transactions)
  const start = await counted()
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const spent = (await counted()) - start
  t.ok(start > 0, `${start} IndexedDB transactions before (the count works)`)
  t.ok(spent < 20, `${spent} IndexedDB transactions in 2 s of waiting`)
  const now = await stats(page)
  t.equal(now.progress.retries, 1, 'no request while waiting')
  t.equal(now.progress.pending, 5, 'nothing dropped')
})

t.test('bad input fails at the call: a null context rejects, a bad sessionId option throws', async (t) => {
  const site = await startSite(t)
  const page = await newPage(t, site)
  const outcome = await page.evaluate(async () => {
    const w = window as unknown as PageWindow
    const track = w.client.track as (...args: unknown[]) => Promise<string>
    let nullContext: string
    try {
      nullContext = await track('page.view', {}, null).then(() => 'resolved', (error: Error) => `rejected ${error.name}`)
    } catch (error) {
      nullContext = `threw ${(error as Error).name}`
    }
    const create = (sessionId: unknown) => {
      try {
        w.sdk.createIngestClient({ endpoint: location.origin, getToken: () => 'x', sessionId: sessionId as string, storageName: 'other' })
        return 'created'
      } catch (error) {
        return `threw ${(error as Error).name}`
      }
    }
    const good = await Promise.all([w.client.track('page.view', {}, { sessionId: 's-1' }), w.client.track('page.view')])
    return { nullContext, long: create('s'.repeat(129)), empty: create(''), number: create(5), ok: create('s'.repeat(128)), good }
  })
  t.same(outcome.nullContext, 'rejected TypeError', 'a rejected promise, not a synchronous throw')
  t.same([outcome.long, outcome.empty, outcome.number, outcome.ok], ['threw TypeError', 'threw TypeError', 'threw TypeError', 'created'])
  await waitFor(async () => (await total(site)) >= 2, 15000, 'the good events')
  t.same(await storedCounts(site.sql), { progress: 0, analytics: 2, distinct: 2 })
  t.same(await page.evaluate(() => (window as unknown as PageWindow).rejections), [])
})
