// How the SDK handles refusals, in real Chromium against the real API:
// Retry-After, whole-request 4xx (split to isolate the bad event), per-event
// rejections, 401, and the storage cap.
import t, { type Test } from 'tap'
import type { Page } from 'playwright-core'
import type { IngestClientOptions, IngestStats } from '../../src/client/types.ts'
import { launchBrowser, openPage, resent, startSite, storedCounts, trackMany, waitFor, type PageWindow, type Site } from './browser.ts'

const browser = await launchBrowser(t)

async function newPage(t: Test, site: Site, options: Partial<IngestClientOptions> = {}): Promise<Page> {
  const context = await browser.newContext()
  t.teardown(() => context.close())
  return openPage(context, site, await site.token('alice'), options)
}
const stats = (page: Page): Promise<IngestStats> => page.evaluate(() => (window as unknown as PageWindow).client.getQueueStats())
const total = async (site: Site) => {
  const counts = await storedCounts(site.sql)
  return counts.progress + counts.analytics
}

t.test('429 with Retry-After: 2: no request on either queue before 2 s have passed', async (t) => {
  const site = await startSite(t)
  let refusedAt = 0
  site.recorder.refuse = () => {
    if (refusedAt) return undefined
    refusedAt = Date.now()
    return { status: 429, retryAfter: '2' }
  }
  const page = await newPage(t, site)
  await trackMany(page, { progress: 50 })
  await waitFor(async () => (await stats(page)).progress.retries === 1, 10000, 'the 429 to reach the client')
  // Analytics tracked inside the window must wait too: the limit is per user.
  await trackMany(page, { analytics: 50 })
  await waitFor(async () => (await total(site)) >= 100, 20000, 'all 100 events')

  const { requests } = site.recorder
  t.equal(requests[0]!.status, 429)
  const after = requests.slice(1)
  t.ok(after.length >= 2, `${after.length} requests after the 429`)
  const earliest = Math.min(...after.map((request) => request.arrivedAt))
  t.ok(earliest - refusedAt >= 2000, `next request ${earliest - refusedAt} ms after the 429 was sent`)
  t.same(await storedCounts(site.sql), { progress: 50, analytics: 50, distinct: 100 })
  t.same(resent(site.recorder), [])
})

t.test('400 TOO_MANY_EVENTS: the client halves its batches until they fit', async (t) => {
  const site = await startSite(t)
  const page = await newPage(t, site, { maxBatchEvents: 250 })
  await trackMany(page, { progress: 250 })
  await waitFor(async () => (await total(site)) >= 250, 20000, '250 events')
  t.same(await storedCounts(site.sql), { progress: 250, analytics: 0, distinct: 250 })
  const statuses = site.recorder.requests.map((request) => request.status)
  t.same(statuses.slice(0, 3), [400, 400, 200], '250 -> 125 -> 63 events')
  t.same(resent(site.recorder), [])
  t.equal((await stats(page)).progress.rejected, 0)
})

t.test('413: batches larger than the server takes are halved until they fit', async (t) => {
  const site = await startSite(t, { MAX_BATCH_BYTES: 8192 })
  const page = await newPage(t, site)
  await trackMany(page, { analytics: 120 })
  await waitFor(async () => (await total(site)) >= 120, 20000, '120 events')
  t.same(await storedCounts(site.sql), { progress: 0, analytics: 120, distinct: 120 })
  t.ok(site.recorder.requests.some((request) => request.status === 413), 'the server answered 413 at first')
  t.same(resent(site.recorder), [])
})

t.test('a bad event is isolated and dropped; the others arrive', async (t) => {
  const site = await startSite(t)
  const page = await newPage(t, site)
  const { good, foreign, invalid } = await page.evaluate(async () => {
    const { client } = window as unknown as PageWindow
    const lesson = (i: number) => ({ courseId: 'course-1', lessonId: `lesson-${i % 5}`, type: 'lesson_started' as const })
    const stored = Array.from({ length: 40 }, (_, i) => client.trackProgress(lesson(i)))
    // 403 for the whole batch: a learner may not send for another user.
    const foreign = client.trackProgress({ ...lesson(1), userId: 'mallory' })
    // Per-event rejection inside a 200: progress above 100.
    const invalid = client.trackProgress({ ...lesson(2), type: 'lesson_progress', progress: 150 })
    return { good: await Promise.all(stored), foreign: await foreign, invalid: await invalid }
  })
  await waitFor(async () => (await stats(page)).progress.pending === 0, 20000, 'the queue to drain')

  t.same(await storedCounts(site.sql), { progress: 40, analytics: 0, distinct: 40 })
  const rejections = await page.evaluate(() => (window as unknown as PageWindow).rejections)
  t.same(
    rejections.map(({ stream, eventId, code }) => ({ stream, eventId, code })).sort((a, b) => a.code.localeCompare(b.code)),
    [{ stream: 'progress', eventId: foreign, code: 'FOREIGN_USER' }, { stream: 'progress', eventId: invalid, code: 'invalid_event' }],
  )
  const after = await stats(page)
  t.equal(after.progress.rejected, 2)
  t.equal(after.progress.dropped, 0)
  t.ok(site.recorder.requests.some((request) => request.status === 403), 'the server refused the mixed batch')
  t.equal(good.length, 40)
})

t.test('a halving that 429s keep interrupting resumes where it was, and isolates the bad event', async (t) => {
  const site = await startSite(t)
  // Every third request refused, as a limit of a few batches a second does to
  // the burst of requests a halving makes: before, each session began again
  // from a whole chunk and never got deeper than two halvings.
  let seen = 0
  site.recorder.refuse = () => (++seen % 3 === 0 ? { status: 429, retryAfter: '1' } : undefined)
  const page = await newPage(t, site)
  const foreign = await page.evaluate(async () => {
    const { client } = window as unknown as PageWindow
    const lesson = (i: number) => ({ courseId: 'course-1', lessonId: `lesson-${i % 5}`, type: 'lesson_started' as const })
    const before = Array.from({ length: 7 }, (_, i) => client.trackProgress(lesson(i)))
    const foreign = client.trackProgress({ ...lesson(7), userId: 'mallory' })
    const after = Array.from({ length: 22 }, (_, i) => client.trackProgress(lesson(i + 8)))
    await Promise.all([...before, ...after])
    return foreign
  })
  await waitFor(async () => (await stats(page)).progress.pending === 0, 30000, 'the queue to drain')
  t.same(await storedCounts(site.sql), { progress: 29, analytics: 0, distinct: 29 })
  const rejections = await page.evaluate(() => (window as unknown as PageWindow).rejections)
  t.same(rejections.map(({ eventId, code }) => ({ eventId, code })), [{ eventId: await foreign, code: 'FOREIGN_USER' }])
  t.ok(site.recorder.requests.filter((request) => request.status === 429).length >= 2, 'the halving was interrupted')
  t.same(resent(site.recorder), [])
})

t.test('401: getToken is asked again once, and the batch goes through', async (t) => {
  const site = await startSite(t)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await openPage(context, site)
  const good = await site.token('alice')
  const calls = await page.evaluate(async (good) => {
    const w = window as unknown as PageWindow & { calls: number }
    w.calls = 0
    const tokens = ['expired.or.revoked', good]
    w.client = w.sdk.createIngestClient({ endpoint: location.origin, getToken: async () => tokens[Math.min(w.calls++, 1)]! })
    await Promise.all(Array.from({ length: 10 }, (_, i) => w.client.track('page.view', { i })))
    await w.client.flush()
    return w.calls
  }, good)
  await waitFor(async () => (await total(site)) >= 10, 10000, '10 events')
  t.equal(calls, 2, 'asked once, then once more after the 401')
  t.same(site.recorder.requests.map((request) => request.status), [401, 200])
})

t.test('a token that stays invalid: events stay stored and are retried with backoff', async (t) => {
  const site = await startSite(t)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await openPage(context, site, 'not-a-valid-token', { baseBackoffMs: 200, maxBackoffMs: 400 })
  await trackMany(page, { progress: 10 })
  await waitFor(async () => (await stats(page)).progress.retries >= 3, 15000, 'three failed attempts')
  const after = await stats(page)
  t.equal(after.progress.pending, 10, 'nothing deleted')
  t.equal(after.progress.rejected + after.progress.dropped, 0)
  t.equal(await total(site), 0)
  t.ok(site.recorder.requests.every((request) => request.status === 401))
})

t.test('getToken returning no token: the events stay stored, counted as retries, and go once it returns one', async (t) => {
  const site = await startSite(t)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await openPage(context, site)
  await page.evaluate(async () => {
    const w = window as unknown as PageWindow & { token: string | null }
    w.token = null // signed out, say
    w.client = w.sdk.createIngestClient({ endpoint: location.origin, getToken: () => w.token!, baseBackoffMs: 200, maxBackoffMs: 400 })
    await Promise.all(Array.from({ length: 5 }, (_, i) => w.client.track('page.view', { i })))
  })
  await waitFor(async () => (await stats(page)).analytics.retries >= 2, 15000, 'two failed attempts')
  const now = await stats(page)
  t.equal(now.analytics.pending, 5, 'every event kept')
  t.equal(now.analytics.rejected + now.analytics.dropped, 0)
  t.equal(site.recorder.requests.length, 0, 'nothing sent without a token')
  const token = await site.token('alice')
  await page.evaluate((token) => ((window as unknown as { token: string }).token = token), token)
  await waitFor(async () => (await total(site)) >= 5, 10000, 'the 5 events once getToken returns a token')
  t.same(await storedCounts(site.sql), { progress: 0, analytics: 5, distinct: 5 })
})

t.test('storage cap: analytics are dropped before progress, and counted', async (t) => {
  const site = await startSite(t)
  site.recorder.refuse = () => ({ status: 503, retryAfter: '1' })
  const page = await newPage(t, site, { maxStoredEvents: 50 })
  const firstProgress = await trackMany(page, { progress: 40 })
  await trackMany(page, { analytics: 30 })
  let now = await stats(page)
  t.same([now.progress.pending, now.analytics.pending, now.analytics.dropped, now.progress.dropped], [40, 10, 20, 0], '20 oldest analytics dropped')
  const moreProgress = await trackMany(page, { progress: 20 })
  now = await stats(page)
  t.same([now.progress.pending, now.analytics.pending, now.analytics.dropped, now.progress.dropped], [50, 0, 30, 10], 'then the rest, then the oldest progress')

  site.recorder.refuse = undefined
  await waitFor(async () => (await total(site)) >= 50, 20000, 'the 50 kept events')
  const stored = await site.sql<{ id: string }[]>`select event_id::text as id from progress_events`
  t.same(new Set(stored.map((row) => row.id)), new Set([...firstProgress.slice(10), ...moreProgress]), 'the newest 50 progress events survived')
  t.same(await storedCounts(site.sql), { progress: 50, analytics: 0, distinct: 50 })
})

t.test('a 403 that no event explains (a token problem) drops nothing', async (t) => {
  const site = await startSite(t)
  const page = await newPage(t, site, { baseBackoffMs: 200, maxBackoffMs: 400 })
  // The API's FOREIGN_USER blames an event; stand in for a token that lost its
  // rights (the API's FORBIDDEN) by answering in the browser.
  await page.route('**/api/client/progress/batch', (route) =>
    route.fulfill({ status: 403, contentType: 'application/json', body: JSON.stringify({ statusCode: 403, code: 'FORBIDDEN', error: 'Forbidden', message: 'no' }) }),
  )
  await trackMany(page, { progress: 8 })
  await waitFor(async () => (await stats(page)).progress.retries >= 2, 15000, 'two failed attempts')
  const now = await stats(page)
  t.equal(now.progress.pending, 8, 'every event kept')
  t.equal(now.progress.rejected, 0)
  await page.unroute('**/api/client/progress/batch')
  await waitFor(async () => (await total(site)) >= 8, 15000, 'the 8 events once the server accepts them')
  t.same(await storedCounts(site.sql), { progress: 8, analytics: 0, distinct: 8 })
})
