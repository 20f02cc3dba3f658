// The SDK as shipped: the bundle and its declarations, and the demo served
// by the API (GET /demo, GET /sdk/*), driven in Chromium.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import Fastify from 'fastify'
import t from 'tap'
import { createErrorHandler } from '../../src/api/error-handler.ts'
import demoRoutes from '../../src/api/routes/demo.ts'
import { launchBrowser, startSite, storedCounts, waitFor } from './browser.ts'

/** Runs a command without tap's NODE_OPTIONS loaders. */
const clean = (command: string, args: string[]) => spawnSync('env', ['-u', 'NODE_OPTIONS', command, ...args], { encoding: 'utf8' })

/** docs/sdk.md promises this; the SDK's size is part of what it offers. */
const GZIP_BUDGET_BYTES = 6 * 1024

t.test('the bundle is one small ESM file with self-contained declarations', async (t) => {
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-build-'))
  t.teardown(() => fs.rmSync(outDir, { recursive: true, force: true }))
  // As `npm run build:sdk` runs it, outside tap's loaders (tap re-injects them
  // into child processes through NODE_OPTIONS, and tsc cannot run under them).
  const build = clean(process.execPath, ['scripts/node-ts.mjs', 'scripts/build-sdk.ts', '--out-dir', outDir])
  t.equal(build.status, 0, `build:sdk ${build.stdout}${build.stderr}`)
  const file = path.join(outDir, 'ingest-client.js')
  const code = fs.readFileSync(file)
  const gzipBytes = gzipSync(code, { level: 9 }).byteLength
  t.comment(build.stdout.trim())
  t.ok(gzipBytes < GZIP_BUDGET_BYTES, `${gzipBytes} bytes gzipped, budget ${GZIP_BUDGET_BYTES}`)
  t.match(code.toString(), /export\s*\{[^}]*createIngestClient/, 'an ES module exporting createIngestClient')
  t.notMatch(code.toString(), /\bimport\s*[{*"']|\brequire\(/, 'no runtime dependencies')
  t.ok(fs.existsSync(`${file}.map`), 'a source map')
  t.ok(fs.existsSync(path.join(outDir, 'ingest-client.d.ts')), 'declarations')

  // A consumer compiled against the declarations alone: right usage passes, wrong usage fails.
  fs.writeFileSync(path.join(outDir, 'consumer.ts'), `
import { createIngestClient, type IngestStats, type QueueStats } from './ingest-client.js'
const client = createIngestClient({ endpoint: 'https://ingest.example.com', getToken: async () => 'token', maxStoredEvents: 5000 })
const id: Promise<string> = client.trackProgress({ courseId: 'c', lessonId: 'l', type: 'lesson_progress', progress: 40 })
const other: Promise<string> = client.track('quiz.answered', { correct: true }, { courseId: 'c' })
const started: Promise<string> = client.trackProgress({ courseId: 'c', lessonId: 'l', type: 'lesson_started' })
// Properties typed by an interface, which has no index signature.
interface Answer { question: number; correct: boolean }
const answer: Answer = { question: 4, correct: true }
const answered: Promise<string> = client.track('quiz.answered', answer)
const stats: Promise<IngestStats> = client.flush()
const queue = (s: IngestStats): QueueStats => s.progress
// @ts-expect-error not an event type
void client.trackProgress({ courseId: 'c', lessonId: 'l', type: 'lesson_done' })
// @ts-expect-error progress is required for lesson_progress
void client.trackProgress({ courseId: 'c', lessonId: 'l', type: 'lesson_progress' })
// @ts-expect-error getToken is required
createIngestClient({ endpoint: 'x' })
export { id, other, started, answered, stats, queue }
`)
  fs.writeFileSync(path.join(outDir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom'], types: [] },
    files: ['consumer.ts'],
  }))
  const tsc = clean(path.resolve('node_modules/.bin/tsc'), ['-p', outDir])
  t.equal(tsc.status, 0, `consumer type-checks against ingest-client.d.ts ${tsc.stdout}${tsc.stderr}`)
})

t.test('GET /sdk/* and /demo answer a coded 404 until the SDK is built', async (t) => {
  const app = Fastify()
  app.setErrorHandler(createErrorHandler(1024))
  await app.register(demoRoutes, { sdkDir: path.join(os.tmpdir(), 'no-such-sdk-dir') })
  t.teardown(() => app.close())
  for (const url of ['/demo', '/sdk/ingest-client.js', '/sdk/secrets.txt', '/sdk/..%2f..%2fpackage.json']) {
    const res = await app.inject({ method: 'GET', url })
    t.equal(res.statusCode, 404, url)
    t.equal(res.json().code, 'NOT_FOUND', url)
  }
  t.match((await app.inject({ method: 'GET', url: '/demo' })).json().message, /npm run build:sdk/)
})

t.test('the demo page, served by the API, tracks events and shows the queue draining', async (t) => {
  const site = await startSite(t) // builds dist/sdk
  const browser = await launchBrowser(t)
  const context = await browser.newContext()
  const page = await context.newPage()

  const bundle = await page.request.get(`${site.origin}/sdk/ingest-client.js`)
  t.equal(bundle.status(), 200)
  t.match(bundle.headers()['content-type'], /javascript/)

  await page.goto(`${site.origin}/demo`)
  await page.fill('#token', await site.token('alice'))
  await page.click('#start')
  await page.click('#analytics')
  await page.click('#progress')
  await waitFor(async () => {
    const counts = await storedCounts(site.sql)
    return counts.analytics + counts.progress >= 11
  }, 15000, 'the demo events')
  // The stats table refreshes every 250 ms: the pending row reads 0 and 0 once both queues drained.
  await page.waitForFunction(() => {
    const pending = [...document.querySelectorAll('#stats tr')].find((row) => row.firstElementChild?.textContent === 'pending')
    return pending?.textContent === 'pending00'
  }, undefined, { timeout: 10000 })
  t.same(await storedCounts(site.sql), { progress: 1, analytics: 10, distinct: 11 })
  t.match(await page.textContent('#log'), /stored 10 analytics events/)
})
