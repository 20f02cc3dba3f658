// npm start: everything on one machine. Finds or boots the database (embedded
// unless DATABASE_URL is set), migrates it, bundles the browser SDK for the
// demo page, starts the API and one worker process, and prints how to use it.
// Ctrl-C drains requests, stops the worker, then the embedded database;
// during the start, it stops what has started so far.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { loadConfigOrExit } from './config.ts'
import { locateDatabase } from './db/database.ts'
import { DEMO_ORG, seedDemo } from './db/demo.ts'
import { createPool } from './db/pool.ts'
import { readySchemaOrExit } from './db/ready.ts'
import { startApiOrExit, withDevSecret } from './api/server.ts'
import { checkedClaims, mintToken } from './auth/tokens.ts'
import { onShutdownSignal } from './shutdown.ts'

// The printed token's learner: the first course and learner of the demo data.
const DEMO = { orgId: DEMO_ORG, courseId: 'course-1', userId: 'learner-1' }

const config = withDevSecret(loadConfigOrExit())

// Ctrl-C may come at any point of the start, and the embedded server runs
// detached (a Ctrl-C must not stop it under requests still draining), so it
// would outlive a start cut short. The handler is installed before anything
// starts: the step under way finishes (the database starting, a migration),
// what has started stops, last first, and the start goes no further.
const started: Array<() => Promise<void>> = []
let step: Promise<unknown> = Promise.resolve()
let stopping = false
onShutdownSignal(async () => {
  stopping = true
  await step.catch(() => {})
  for (const stop of started.reverse()) await stop()
})

/** Runs one step of the start and records how to stop what it started; once stopping, waits here for the exit. */
async function startStep<T>(work: Promise<T>, stop?: (value: T) => Promise<void>): Promise<T> {
  const recorded = work.then((value) => {
    if (stop) started.push(() => stop(value))
    return value
  })
  step = recorded
  const value = await recorded
  if (stopping) await new Promise(() => {}) // the signal handler exits the process
  return value
}

const database = await startStep(
  locateDatabase(config, (line) => console.log(line)),
  (database) => database.release(),
)
const sql = createPool(database.url, { max: 1, applicationName: 'start' })
await startStep(readySchemaOrExit(sql, database, config, { migrate: true, log: console.log }))
// The demo learner of the printed token: without an assignment its events
// would be deferred. Only on the embedded database: DATABASE_URL may be a
// school's production one, where a demo org and a 30-day token do not belong.
// (withDevSecret gives the embedded database one whenever none is set.)
const demoSecret = database.embedded ? config.AUTH_JWT_SECRET : undefined
if (demoSecret) await startStep(seedDemo(sql, { learners: 1, courses: 1 }))
await sql.end()

/**
 * Bundles the browser SDK for the /demo page, so that it works right after
 * `npm ci && npm start` (esbuild takes well under a second). Only a
 * development install has esbuild; without it the page says to build first.
 */
async function buildDemoSdk(): Promise<boolean> {
  try {
    const { buildSdk } = await import('../scripts/build-sdk.ts')
    await buildSdk()
    return true
  } catch (error) {
    console.log(`SDK not bundled (${(error as Error).message.split('\n')[0]}): /demo needs npm run build:sdk`)
    return false
  }
}
const demoPage = await startStep(buildDemoSdk())

// No stop of its own: one stopping now finds no request in it, and the exit
// closes its socket. Once the worker runs, the two stop together.
const api = await startStep(startApiOrExit(config, database))
// The IPC channel is the worker's tie to this process: should this one be
// killed outright (SIGKILL), the channel closes and the worker stops too
// rather than run on, orphaned, holding the embedded database.
const worker: ChildProcess = spawn(process.execPath, [fileURLToPath(new URL('./workers/main.ts', import.meta.url))], {
  stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  env: process.env,
})
worker.on('exit', (code, signal) => {
  if (!stopping) console.error(`worker exited (${signal ?? code}); the API keeps running`)
})
started.push(async () => {
  const workerExited = new Promise<void>((resolve) => (worker.exitCode !== null ? resolve() : worker.once('exit', () => resolve())))
  worker.kill('SIGTERM')
  await api.close()
  await workerExited
})

const running = `
Learning-events ingestion service is running
  API        ${api.url}   (OpenAPI: ${api.url}/documentation/json, health: ${api.url}/api/health)
  Database   ${database.embedded ? `embedded PostgreSQL, data in ${config.DATA_DIR}/pg` : 'DATABASE_URL (no demo data written to it)'}`
if (!demoSecret) {
  const tokens = config.AUTH_JWT_SECRET ? ', or: npm run token -- --user ID --org ORG' : ''
  console.log(`${running}\nTokens come from your identity provider${tokens}.\nStop with Ctrl-C.\n`)
} else {
  const token = await mintToken(demoSecret, {
    userId: DEMO.userId,
    orgId: DEMO.orgId,
    ttl: '30d',
    ...checkedClaims(config),
  })
  const event = { eventId: randomUUID(), courseId: DEMO.courseId, lessonId: 'lesson-1', type: 'lesson_completed', occurredAt: new Date().toISOString() }
  console.log(`${running}
${demoPage ? `  SDK demo   ${api.url}/demo   (paste the token below)\n` : ''}  Dev token  for ${DEMO.userId} in org ${DEMO.orgId}, valid 30 days:
${token}

Try it:
  curl -s -X POST ${api.url}/api/client/progress/batch \\
    -H 'Authorization: Bearer ${token}' \\
    -H 'Content-Type: application/json' \\
    -d '${JSON.stringify({ events: [event] })}'
  curl -s ${api.url}/api/v1/progress/me -H 'Authorization: Bearer ${token}'

More learners: npm run seed:demo -- --learners 100   (learner-1..100 on course-1..4; before that,
  other users' events are deferred), then npm run token -- --user learner-2 --org demo
Stop with Ctrl-C.
`)
}

