// Durability in real Chromium: the server going away, and tabs closed,
// reloaded or crashed with events still queued.
import t, { type Test } from 'tap'
import type { BrowserContext, Page } from 'playwright-core'
import type { IngestStats } from '../../src/client/types.ts'
import { launchBrowser, openPage, resent, sleep, startSite, storedCounts, trackMany, waitFor, type PageWindow, type Site } from './browser.ts'

const browser = await launchBrowser(t)

async function newContext(t: Test): Promise<BrowserContext> {
  const context = await browser.newContext()
  t.teardown(() => context.close())
  return context
}
const stats = (page: Page): Promise<IngestStats> => page.evaluate(() => (window as unknown as PageWindow).client.getQueueStats())
const total = async (site: Site) => {
  const counts = await storedCounts(site.sql)
  return counts.progress + counts.analytics
}
async function storedIds(site: Site): Promise<Set<string>> {
  const rows = await site.sql<{ id: string }[]>`select event_id::text as id from progress_events union all select event_id::text from analytics_events`
  return new Set(rows.map((row) => row.id))
}
/** Refuse every batch with 503 until released: events pile up on the device. */
const block = (site: Site) => (site.recorder.refuse = () => ({ status: 503, retryAfter: '1' }))
const release = (site: Site) => (site.recorder.refuse = undefined)

t.test('server down for 10 s, then up: everything arrives exactly once', async (t) => {
  const site = await startSite(t)
  const page = await openPage(await newContext(t), site, await site.token('alice'))
  const before = await trackMany(page, { progress: 100, analytics: 100 })
  await waitFor(async () => {
    const now = await stats(page)
    return now.progress.pending + now.analytics.pending === 0
  }, 20000, 'the first 200 to be acknowledged')

  await site.down()
  const downAt = Date.now()
  const during = await trackMany(page, { progress: 150, analytics: 150, spreadMs: 5 })
  await sleep(Math.max(0, downAt + 10000 - Date.now()))
  const outage = await stats(page)
  t.ok(outage.progress.retries + outage.analytics.retries >= 2, `failed attempts while down: ${outage.progress.retries + outage.analytics.retries}`)
  t.equal(outage.progress.pending + outage.analytics.pending, 300, 'everything tracked while down is held')
  await site.up()
  const upAt = Date.now()

  await waitFor(async () => (await total(site)) >= 500, 40000, 'all 500 events after the outage')
  t.comment(`all events stored ${Date.now() - upAt} ms after the server came back`)
  await sleep(1500)
  t.same(await storedCounts(site.sql), { progress: 250, analytics: 250, distinct: 500 })
  t.same(await storedIds(site), new Set([...before, ...during]))
  t.same(resent(site.recorder), [], 'nothing was sent twice')
})

t.test('a tab closed with a full queue: the events arrive when the app is opened again, exactly once', async (t) => {
  const site = await startSite(t)
  const context = await newContext(t)
  const token = await site.token('alice')
  block(site)
  const page = await openPage(context, site, token)
  const ids = await trackMany(page, { progress: 200, analytics: 200 })
  await page.close({ runBeforeUnload: true }) // (returns before the page is gone)
  if (!page.isClosed()) await page.waitForEvent('close')
  // A keepalive request sent on pagehide is answered 503 too, before the release.
  await sleep(500)
  await waitFor(() => site.recorder.requests.every((request) => request.finishedAt !== undefined), 10000, "the closed tab's requests answered")
  release(site)
  t.equal(await total(site), 0, 'nothing was stored while the server refused')

  await openPage(context, site, token)
  await waitFor(async () => (await total(site)) >= 400, 30000, 'the 400 events from the closed tab')
  await sleep(1500)
  t.same(await storedCounts(site.sql), { progress: 200, analytics: 200, distinct: 400 })
  t.same(await storedIds(site), new Set(ids))
})

t.test('a tab reloaded with a full queue: the reloaded page sends the events, exactly once', async (t) => {
  const site = await startSite(t)
  const token = await site.token('alice')
  block(site)
  const page = await openPage(await newContext(t), site, token)
  const ids = await trackMany(page, { progress: 150, analytics: 150 })
  await page.reload()
  await page.waitForFunction(() => (window as unknown as PageWindow).ready === true)
  release(site)
  await waitFor(async () => (await total(site)) >= 300, 30000, 'the 300 events after the reload')
  await sleep(1500)
  t.same(await storedCounts(site.sql), { progress: 150, analytics: 150, distinct: 300 })
  t.same(await storedIds(site), new Set(ids))
  const after = await stats(page)
  t.equal(after.progress.pending + after.analytics.pending, 0)
})

t.test('a crashed tab: every event whose track() resolved is sent from the next page', async (t) => {
  const site = await startSite(t)
  const context = await newContext(t)
  const token = await site.token('alice')
  block(site)
  const page = await openPage(context, site, token)
  const ids = await trackMany(page, { progress: 120, analytics: 80 })
  // chrome://crash kills the renderer: no pagehide, no unload, nothing in memory survives.
  const crashed = page.waitForEvent('crash', { timeout: 10000 })
  await page.goto('chrome://crash').catch(() => {})
  await crashed
  release(site)

  await openPage(context, site, token)
  await waitFor(async () => (await total(site)) >= 200, 30000, 'the 200 events from the crashed tab')
  await sleep(1500)
  t.same(await storedCounts(site.sql), { progress: 120, analytics: 80, distinct: 200 })
  t.same(await storedIds(site), new Set(ids))
})

t.test('pagehide sends the queue with keepalive: events arrive although the tab is gone', async (t) => {
  const site = await startSite(t)
  const context = await newContext(t)
  const token = await site.token('alice')
  const page = await openPage(context, site, token)
  await trackMany(page, { progress: 1 })
  await waitFor(async () => (await total(site)) === 1, 10000, 'the first event')
  // The next flush is about a second away: closing now leaves 40 events queued.
  const ids = await trackMany(page, { progress: 20, analytics: 20 })
  await page.close()
  await waitFor(async () => (await total(site)) >= 41, 10000, 'the 40 events sent on the way out')
  const closedRequests = site.recorder.requests.length
  t.ok(closedRequests >= 2, `${closedRequests} requests`)

  // They were not deleted before the tab died: the next page sends them again, and the server counts them once.
  const again = await openPage(context, site, token)
  await waitFor(async () => {
    const now = await stats(again)
    return now.progress.pending + now.analytics.pending === 0
  }, 20000, 'the next page to settle what the closed one left')
  t.same(await storedCounts(site.sql), { progress: 21, analytics: 20, distinct: 41 })
  t.ok([...ids].every((id) => site.recorder.okCount.has(id)))
})

t.test('the page becoming hidden flushes at once, not at the next interval', async (t) => {
  const site = await startSite(t)
  const page = await openPage(await newContext(t), site, await site.token('alice'), { minIntervalMs: 8000, maxIntervalMs: 8000 })
  await trackMany(page, { progress: 1 })
  await waitFor(async () => (await total(site)) === 1, 10000, 'the first event')
  await trackMany(page, { progress: 5, analytics: 5 })
  const hiddenAt = Date.now()
  await page.evaluate(() => {
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true })
    document.dispatchEvent(new Event('visibilitychange'))
  })
  await waitFor(async () => (await total(site)) === 11, 6000, 'the queued events, well before the 8 s interval')
  t.ok(Date.now() - hiddenAt < 6000, `sent ${Date.now() - hiddenAt} ms after the page was hidden`)
  t.same(resent(site.recorder), [])
})

/** Makes the page track in its own pagehide and visibilitychange handlers, which run after the SDK's. */
const trackOnTheWayOut = (page: Page) =>
  page.evaluate(() => {
    const { client } = window as unknown as PageWindow
    addEventListener('pagehide', () => {
      void client.trackProgress({ courseId: 'course-1', lessonId: 'lesson-2', type: 'lesson_completed' })
      void client.track('page.leave', { reason: 'pagehide' })
    })
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'hidden') void client.track('page.hidden')
    })
  })
const namesStored = async (site: Site) =>
  (await site.sql<{ name: string }[]>`select name from analytics_events order by name`).map((row) => row.name)

/** A page that sent one event (so it holds a token) and whose own handlers will track 3 more as it leaves. */
async function pageOnItsWayOut(t: Test) {
  const site = await startSite(t)
  const page = await openPage(await newContext(t), site, await site.token('alice'))
  await trackMany(page, { progress: 1 })
  // Acknowledged in the page, not only stored: else pagehide may send it again (a fourth resend).
  await waitFor(async () => (await total(site)) === 1 && (await stats(page)).progress.pending === 0, 10000, 'the first event')
  await trackOnTheWayOut(page)
  return { site, page }
}

t.test("events tracked in the page's own pagehide and visibilitychange handlers go out on close", async (t) => {
  const { site, page } = await pageOnItsWayOut(t)
  await page.close()
  // No page is opened again: only a send made while the page closed can bring them.
  await waitFor(async () => (await total(site)) >= 4, 5000, 'the 3 events tracked while the page closed')
  t.same(await storedCounts(site.sql), { progress: 2, analytics: 2, distinct: 4 })
  t.same(await namesStored(site), ['page.hidden', 'page.leave'])
})

t.test('events tracked on the way out are stored too: back from the bfcache, they go again and are stored once', async (t) => {
  const { site, page } = await pageOnItsWayOut(t)
  // The page leaves for the bfcache instead of closing, so it lives on to show what it kept.
  await page.evaluate(() => {
    dispatchEvent(new PageTransitionEvent('pagehide', { persisted: true }))
    Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true })
    document.dispatchEvent(new Event('visibilitychange'))
  })
  await waitFor(async () => (await total(site)) >= 4, 5000, 'the 3 events tracked on the way out')
  const away = await stats(page)
  t.same([away.progress.pending, away.analytics.pending], [1, 2], 'still stored, for a send that might have been lost')

  await page.evaluate(() => dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true })))
  await waitFor(async () => {
    const now = await stats(page)
    return now.progress.pending + now.analytics.pending === 0
  }, 10000, 'the page back from the bfcache to send them again')
  t.equal(resent(site.recorder).length, 3, 'sent twice')
  t.same(await storedCounts(site.sql), { progress: 2, analytics: 2, distinct: 4 }, 'stored once')
})
