// The SDK in real Chromium against the real API: volume and several tabs.
import t from 'tap'
import { launchBrowser, openPage, resent, sleep, startSite, storedCounts, trackMany, waitFor, type PageWindow } from './browser.ts'

const browser = await launchBrowser(t)

t.test('1,000 tracked events arrive exactly once, under the default rate limit of 5 batches/s', async (t) => {
  const site = await startSite(t, { RATE_LIMIT_BATCHES_PER_SECOND: 5 })
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await openPage(context, site, await site.token('alice'))

  const ids = await trackMany(page, { progress: 500, analytics: 500 })
  t.equal(new Set(ids).size, 1000, 'every track() resolved with its own eventId')
  await waitFor(async () => {
    const counts = await storedCounts(site.sql)
    return counts.progress + counts.analytics >= 1000
  }, 45000, '1,000 events in the database')
  await sleep(1500) // a late resend would show up now

  t.same(await storedCounts(site.sql), { progress: 500, analytics: 500, distinct: 1000 })
  const stored = await site.sql<{ id: string }[]>`select event_id::text as id from progress_events union all select event_id::text from analytics_events`
  t.same(new Set(stored.map((row) => row.id)), new Set(ids), 'the stored ids are the ones track() returned')
  t.same(resent(site.recorder), [], 'no event was in two successful requests')
  t.equal(site.recorder.okCount.size, 1000)

  const { batches, requests } = site.recorder
  t.ok(batches.every((batch) => batch.eventIds.length <= 100), 'batches within MAX_BATCH_EVENTS')
  t.ok(batches.every((batch) => batch.sentAt && Math.abs(Date.parse(batch.sentAt) - batch.respondedAt) < 60000), 'sentAt on every request')
  t.ok(requests.every((request) => request.depth !== undefined && /^\d+$/.test(request.depth)), 'X-Client-Queue-Depth on every request')
  t.equal(Number(requests[0]!.depth), 1000, 'the first request reports everything still held')
  const throttled = requests.filter((request) => request.status === 429).length
  t.comment(`${requests.length} requests, ${throttled} answered 429 and retried after Retry-After`)

  const stats = await page.evaluate(() => (window as unknown as PageWindow).client.getQueueStats())
  t.equal(stats.progress.pending + stats.analytics.pending, 0, 'nothing left on the device')
  t.equal(stats.progress.rejected + stats.analytics.rejected + stats.progress.dropped + stats.analytics.dropped, 0)
  t.equal(stats.progress.retries + stats.analytics.retries, throttled, 'every 429 counted as a retry')
})

t.test('two tabs tracking at once: no duplicates, one request in flight per queue', async (t) => {
  const site = await startSite(t)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const token = await site.token('alice')
  const tabs = await Promise.all([openPage(context, site, token), openPage(context, site, token)])

  const ids = (await Promise.all(tabs.map((tab, n) => trackMany(tab, { progress: 250, analytics: 250, spreadMs: 2, tag: `tab${n}` })))).flat()
  t.equal(new Set(ids).size, 1000)
  await waitFor(async () => {
    const counts = await storedCounts(site.sql)
    return counts.progress + counts.analytics >= 1000
  }, 45000, '1,000 events from two tabs')
  await sleep(1500)

  t.same(await storedCounts(site.sql), { progress: 500, analytics: 500, distinct: 1000 })
  t.same(resent(site.recorder), [], 'each event was sent by one tab, once')
  t.same(site.recorder.maxInFlight, { progress: 1, analytics: 1 }, 'never two requests in flight per queue, across tabs')
  t.ok(site.recorder.requests.length >= 10, `${site.recorder.requests.length} requests`)
})
