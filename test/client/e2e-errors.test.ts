// What the SDK's calls reject with when it cannot do its work, in real
// Chromium: no IndexedDB (private modes, blocked storage), and after shutdown().
import t, { type Test } from 'tap'
import type { BrowserContext } from 'playwright-core'
import type { IngestClient } from '../../src/client/types.ts'
import { launchBrowser, openPage, startSite, type PageWindow } from './browser.ts'

const browser = await launchBrowser(t)

type WithOutcomes = PageWindow & { outcomes(client: IngestClient): Promise<string[]> }

/** A context whose pages have window.outcomes: what track, trackProgress, flush and getQueueStats settle with. */
async function newContext(t: Test): Promise<BrowserContext> {
  const context = await browser.newContext()
  t.teardown(() => context.close())
  await context.addInitScript(() => {
    ;(window as unknown as WithOutcomes).outcomes = (client) =>
      Promise.all(
        [
          () => client.track('page.view'),
          () => client.trackProgress({ courseId: 'course-1', lessonId: 'lesson-1', type: 'lesson_started' }),
          () => client.flush(),
          () => client.getQueueStats(),
        ].map((call) => call().then(() => 'resolved', (error: Error) => `${error.name}: ${error.message}`)),
      )
  })
  return context
}

t.test('without IndexedDB every call rejects with StorageUnavailableError', async (t) => {
  const site = await startSite(t)
  const token = await site.token('alice')
  const blockers = {
    'indexedDB is undefined': () => Object.defineProperty(window, 'indexedDB', { value: undefined, configurable: true }),
    'indexedDB.open throws': () => {
      IDBFactory.prototype.open = () => {
        throw new DOMException('The user denied permission to access the database.', 'SecurityError')
      }
    },
  }
  const expected = 'StorageUnavailableError: IndexedDB is unavailable, so events cannot be stored'
  for (const [how, blocker] of Object.entries(blockers)) {
    const context = await newContext(t)
    await context.addInitScript(blocker)
    const page = await openPage(context, site)
    const seen = await page.evaluate(async (token) => {
      const w = window as unknown as WithOutcomes
      const client = w.sdk.createIngestClient({ endpoint: location.origin, getToken: () => token })
      const seen = await w.outcomes(client)
      await client.shutdown()
      return seen
    }, token)
    t.same(seen, [expected, expected, expected, expected], how)
  }
})

t.test('after shutdown() every call rejects with "ingest client is shut down"', async (t) => {
  const site = await startSite(t)
  const page = await openPage(await newContext(t), site, await site.token('alice'))
  const seen = await page.evaluate(async () => {
    const w = window as unknown as WithOutcomes
    await w.client.track('page.view')
    await w.client.shutdown()
    return w.outcomes(w.client)
  })
  const expected = 'Error: ingest client is shut down'
  t.same(seen, [expected, expected, expected, expected])
})
