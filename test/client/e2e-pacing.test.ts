// Adaptive pacing in real Chromium: the flush interval follows the server's
// X-Client-Queue-Lag and the observed latency.
import t from 'tap'
import type { Page } from 'playwright-core'
import type { IngestStats } from '../../src/client/types.ts'
import { launchBrowser, openPage, startSite, storedCounts, waitFor, type PageWindow, type Recorder } from './browser.ts'

const browser = await launchBrowser(t)

/** Tracks one progress event every 100 ms for `ms`. */
const trickle = (page: Page, ms: number) =>
  page.evaluate(async (ms) => {
    const { client } = window as unknown as PageWindow
    const end = Date.now() + ms
    for (let i = 0; Date.now() < end; i++) {
      await client.trackProgress({ courseId: 'course-1', lessonId: `lesson-${(i % 5) + 1}`, type: 'lesson_started' })
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }, ms)

/** Gaps between the arrivals of requests from index `from` on. */
function gaps(recorder: Recorder, from: number): number[] {
  const arrivals = recorder.requests.slice(from).map((request) => request.arrivedAt)
  return arrivals.slice(1).map((at, i) => at - arrivals[i]!)
}
const stats = (page: Page): Promise<IngestStats> => page.evaluate(() => (window as unknown as PageWindow).client.getQueueStats())
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

t.test('the server raises X-Client-Queue-Lag: the flush interval grows, and shrinks back when it clears', async (t) => {
  const site = await startSite(t)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await openPage(context, site, await site.token('alice'))

  await trickle(page, 5000)
  const baseline = gaps(site.recorder, 0)

  site.recorder.lagMs = 2000
  // The request in flight when the lag appears was scheduled without it.
  const lagFrom = site.recorder.requests.length + 1
  await trickle(page, 12000)
  const lagged = gaps(site.recorder, lagFrom)
  const { progress } = await page.evaluate(() => (window as unknown as PageWindow).client.getQueueStats())
  t.equal(progress.lagMs, 2000, 'the client reports the lag it was given')

  site.recorder.lagMs = 0
  const clearFrom = site.recorder.requests.length + 1
  await trickle(page, 7000)
  const cleared = gaps(site.recorder, clearFrom)

  t.comment(`median gap: ${median(baseline)} ms without lag, ${median(lagged)} ms with 2000 ms lag, ${median(cleared)} ms after it cleared`)
  t.ok(baseline.length >= 2, `${baseline.length} gaps without lag`)
  t.ok(lagged.length >= 2, `${lagged.length} gaps with lag`)
  t.ok(cleared.length >= 1, `${cleared.length} gaps after the lag cleared`)
  t.ok(baseline.every((gap) => gap >= 950), `baseline gaps at least the 1 s interval: ${baseline}`)
  t.ok(lagged.every((gap) => gap >= 2000 + 950), `every lagged gap waits lag + interval: ${lagged}`)
  t.ok(median(lagged) >= median(baseline) + 1500, 'the interval grew by about the lag')
  t.ok(median(cleared) <= median(lagged) - 1500, 'and shrank back once it cleared')
})

t.test('a slow server (400 ms per batch) gets fewer, fuller batches', async (t) => {
  const site = await startSite(t)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await openPage(context, site, await site.token('alice'))
  site.recorder.delayMs = 400
  await trickle(page, 10000)
  const slow = gaps(site.recorder, 0)
  const { progress } = await page.evaluate(() => (window as unknown as PageWindow).client.getQueueStats())
  t.ok(progress.lastLatencyMs !== null && progress.lastLatencyMs >= 400, `last latency ${progress.lastLatencyMs} ms`)
  t.comment(`gaps with 400 ms latency: ${slow}`)
  // interval = 1 s + 4 x latency EWMA: it ramps up as the average (from 0, weight 0.3) converges to ~400 ms
  t.ok(slow.length >= 3, `${slow.length} gaps`)
  t.ok(slow.every((gap) => gap >= 1000 + 4 * 0.3 * 400 + 400), `every gap beyond 1 s + the first sample's share + the request: ${slow}`)
  t.ok(slow.at(-1)! >= 2500 && slow.at(-1)! > slow[0]!, `gaps grew past 2.5 s as the average converged: ${slow}`)
  t.ok(slow.every((gap) => gap <= 8000 + 1000), 'never past the 8 s cap (plus the request)')
})

t.test('flush() under server lag sends nothing and resolves at once; pending shows what is left', async (t) => {
  const site = await startSite(t)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  const page = await openPage(context, site, await site.token('alice'))
  site.recorder.lagMs = 20000
  await page.evaluate(() => (window as unknown as PageWindow).client.trackProgress({ courseId: 'course-1', lessonId: 'lesson-1', type: 'lesson_started' }))
  await waitFor(async () => (await stats(page)).progress.lagMs === 20000, 10000, 'the answer carrying the lag')
  const requests = site.recorder.requests.length
  const { ms, flushed } = await page.evaluate(async () => {
    const { client } = window as unknown as PageWindow
    await Promise.all(Array.from({ length: 5 }, (_, i) => client.trackProgress({ courseId: 'course-1', lessonId: `lesson-${i + 1}`, type: 'lesson_started' })))
    const started = performance.now()
    const flushed = await client.flush()
    return { ms: performance.now() - started, flushed }
  })
  t.comment(`flush() resolved after ${Math.round(ms)} ms`)
  t.ok(ms < 1000, 'at once, not after the 20 s lag')
  t.equal(site.recorder.requests.length, requests, 'nothing sent')
  t.equal(flushed.progress.pending, 5, 'pending: what is still stored')
})

t.test('a clock set back an hour after answers were stored does not hold the queue for the hour', async (t) => {
  const site = await startSite(t)
  const context = await browser.newContext()
  t.teardown(() => context.close())
  // Every page of the context reads its clock offset from localStorage (one origin, one IndexedDB).
  await context.addInitScript(() => {
    const skew = Number(localStorage.getItem('test-clock-skew') ?? 0)
    if (!skew) return
    const RealDate = Date
    globalThis.Date = class extends RealDate {
      constructor(...args: unknown[]) {
        super(...((args.length ? args : [RealDate.now() + skew]) as [number]))
      }
      static override now = () => RealDate.now() + skew
    } as DateConstructor
  })
  const token = await site.token('alice')
  const track = (page: Page) =>
    page.evaluate(async () => {
      const { client } = window as unknown as PageWindow
      await Promise.all(Array.from({ length: 5 }, (_, i) => client.trackProgress({ courseId: 'course-1', lessonId: `lesson-${i + 1}`, type: 'lesson_started' })))
      await client.flush()
    })
  const setSkew = async (page: Page, ms: number) => {
    await page.evaluate((ms) => localStorage.setItem('test-clock-skew', String(ms)), ms)
    await page.close()
  }
  await setSkew(await openPage(context, site, token), 3600000)
  const fast = await openPage(context, site, token)
  await track(fast)
  await waitFor(async () => (await storedCounts(site.sql)).progress === 5, 10000, 'the events sent an hour fast')
  await setSkew(fast, 0)

  const corrected = await openPage(context, site, token)
  await track(corrected)
  await waitFor(async () => (await storedCounts(site.sql)).progress === 10, 15000, 'the events after the clock was set back')
  t.equal((await stats(corrected)).progress.pending, 0)
})
