// npm run bench [-- --quick] [--rate 500] [--learners 5000] [--courses 4] [--events 10] [--no-docs]
// npm run bench -- --render perf/results/<file>.json   (table of a saved run, into docs/performance.md)
//
// The benchmark suite (contract section 7), on a fresh database: an embedded
// PostgreSQL in a temporary directory unless DATABASE_URL names a scratch one.
// It seeds the demo org, measures the baselines (the database ceiling: the
// same batches straight to the procedure, no HTTP; and the naive one-upsert-
// per-event approach), then runs the k6 scenarios against the API started as a
// child process, with group commit off and on: the 500/s scenario, the mixed
// one, the ramp that finds the knee, and a 10x overload. Every figure comes
// from this one run, so the ratios are fair even on a noisy machine.
//
// Writes perf/results/<timestamp>.json, prints a table, and rewrites the table
// between the bench markers of docs/performance.md.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { openEmbedded } from '../src/db/embedded.ts'
import { migrate } from '../src/db/migrate.ts'
import { createPool } from '../src/db/pool.ts'
import { percentile, type LoopResult } from '../perf/closed-loop.ts'
import { rssMb, treeCpuSeconds, watchRss } from '../perf/proc-stats.ts'
import { enableWalTiming, walFlushReader, type WalFlushDelta, type WalFlushReader } from '../perf/wal-flushes.ts'
import { recycleWal } from '../perf/wal-segments.ts'
import { exitWithUsage, parseCliArgs } from './cli-args.ts'
import { seedDemo } from '../src/db/demo.ts'

const root = path.resolve(import.meta.dirname, '..')
const K6_INSTALL = 'go install go.k6.io/k6@v1.8.1'

const USAGE = `usage: npm run bench [-- --quick] [--rate 500] [--learners 5000] [--courses 4] [--events 10] [--no-docs]
       npm run bench -- --render perf/results/<file>.json [--no-docs]`
const { values: flags } = parseCliArgs(USAGE, {
  options: {
    quick: { type: 'boolean', default: false },
    rate: { type: 'string', default: '500' },
    learners: { type: 'string', default: '5000' },
    courses: { type: 'string', default: '4' },
    events: { type: 'string', default: '10' },
    'no-docs': { type: 'boolean', default: false },
    /** Re-render the table of a saved perf/results/*.json (and docs/performance.md) without running anything. */
    render: { type: 'string' },
  },
})
const positive = (name: keyof typeof flags) => {
  const value = Number(flags[name])
  if (!Number.isInteger(value) || value < 1) exitWithUsage(USAGE, `--${name} must be a positive integer`)
  return value
}
const quick = flags.quick!
const rate = positive('rate')
const learners = positive('learners')
const courses = positive('courses')
const eventsPerBatch = positive('events')

/** Phase lengths in seconds: the full run takes about twelve minutes, --quick about two. */
const plan = quick
  ? { ceilingCallers: [4], driverSeconds: 5, warmup: 5, steady: 15, mixed: 10, ramp: { from: 0.5, to: 1.125 }, rampStep: 5, overload: 10, rampWithoutGroupCommit: false }
  : { ceilingCallers: [2, 4, 8], driverSeconds: 15, warmup: 10, steady: 60, mixed: 30, ramp: { from: 0.25, to: 1.5 }, rampStep: 15, overload: 20, rampWithoutGroupCommit: true }

/** Ramp steps are this fraction of the ceiling apart, so the knee is read to 0.125x (quarters until 2026-11-30). */
const RAMP_STEP_FRACTION = 1 / 8

const KNEE_P95_MS = 50

/** WAL kept for reuse on the bench's own server (perf/wal-segments.ts): the default max_wal_size. */
const RECYCLED_WAL_MB = 1024

/**
 * k6's Go garbage collector, given room: each batch's JavaScript leaves
 * garbage, and with Go's default (GOGC=100) k6 spent about a fifth more CPU
 * per request on the cores it shares with the service (docs/performance.md,
 * "Where the rest of the time goes"). The memory limit keeps 1,000 VUs in
 * bounds. GOGC or GOMEMLIMIT in the environment win.
 */
const K6_GC = { GOGC: '400', GOMEMLIMIT: '3GiB' }

// ---------------------------------------------------------------- helpers

const tty = process.stdout.isTTY
function say(line: string) {
  process.stdout.write(`${tty ? '\r\x1b[K' : ''}${line}\n`)
}

/** Shows a phase's elapsed time on a terminal (one line, rewritten). */
function ticker(label: string, seconds: number): () => void {
  if (!tty) {
    say(`${label} (${seconds} s)`)
    return () => {}
  }
  const started = Date.now()
  const draw = () => {
    const elapsed = Math.min(seconds, Math.round((Date.now() - started) / 1000))
    const width = 24
    const done = seconds > 0 ? Math.round((elapsed / seconds) * width) : width
    process.stdout.write(`\r\x1b[K${label} [${'#'.repeat(done)}${'.'.repeat(width - done)}] ${elapsed}/${seconds} s`)
  }
  draw()
  const timer = setInterval(draw, 1000)
  return () => {
    clearInterval(timer)
    process.stdout.write('\r\x1b[K')
  }
}

function findK6(): string {
  const candidates = [process.env.K6, path.join(os.homedir(), 'go', 'bin', 'k6'), ...(process.env.PATH ?? '').split(':').map((dir) => path.join(dir, 'k6'))]
  const found = candidates.find((file) => file && fs.existsSync(file))
  if (!found) {
    console.error(`k6 not found. Install it with \`${K6_INSTALL}\` (it lands in ~/go/bin/k6), or set K6=/path/to/k6.`)
    process.exit(1)
  }
  return found
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

function exited(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  })
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits

if (flags.render) {
  const table = renderTable(JSON.parse(fs.readFileSync(flags.render, 'utf8')) as Results)
  say(table)
  if (!flags['no-docs']) updateDocs(table)
  process.exit(0)
}

// ---------------------------------------------------------------- database

const k6 = findK6() // first: without k6 there is nothing to start

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'learning-events-bench-'))
let databaseUrl = process.env.DATABASE_URL
let stopDatabase = async () => {}
let postgresPid: number | undefined
if (databaseUrl) {
  say(`database: DATABASE_URL (it must be a scratch database: the bench seeds and writes to it; PostgreSQL CPU is not measured)`)
} else {
  fs.chmodSync(scratch, 0o711) // the server may run as the postgres user and must reach its data dir
  const server = await openEmbedded(scratch, say)
  databaseUrl = server.url
  stopDatabase = server.stop
  postgresPid = Number(fs.readFileSync(path.join(scratch, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0])
}
const secret = randomBytes(32).toString('hex')
const children = new Set<ChildProcess>()
/** The bench's own connection: setting up, then reading server statistics between phases. */
const sql = createPool(databaseUrl!, { max: 1, applicationName: 'bench' })
/** Set once the server is known; undefined when it keeps no WAL statistics. */
let wal: WalFlushReader | undefined

async function cleanup() {
  for (const child of children) child.kill('SIGTERM')
  await Promise.all([...children].map(exited))
  await sql.end({ timeout: 5 })
  await stopDatabase()
  fs.rmSync(scratch, { recursive: true, force: true })
}
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)))

// ---------------------------------------------------------------- measuring

interface CpuSeconds {
  api?: number
  postgres?: number
  client: number
}

/** CPU seconds of the API, PostgreSQL and the load generator between two points. */
function cpuMeter(clientPid: number, apiPid?: number) {
  const read = () => ({
    api: apiPid === undefined ? undefined : treeCpuSeconds(apiPid),
    postgres: postgresPid === undefined ? undefined : treeCpuSeconds(postgresPid),
  })
  const start = read()
  // The client's /proc entry goes when it exits: keep its last reading (the
  // final half second of a run, mostly its summary, is not counted).
  let clientLast = 0
  const clientTimer = setInterval(() => (clientLast = Math.max(clientLast, treeCpuSeconds(clientPid))), 500)
  return {
    stop(): CpuSeconds {
      clearInterval(clientTimer)
      const end = read()
      return {
        ...(start.api !== undefined ? { api: round(end.api! - start.api) } : {}),
        ...(start.postgres !== undefined ? { postgres: round(end.postgres! - start.postgres) } : {}),
        client: round(clientLast),
      }
    },
  }
}

async function runDriver(script: string, callers: number, seconds: number): Promise<LoopResult & { cpuSeconds: CpuSeconds }> {
  const args = [
    path.join(root, 'perf', script), '--url', databaseUrl!, '--callers', String(callers), '--seconds', String(seconds),
    '--warmup', String(Math.min(3, seconds)), '--learners', String(learners), '--courses', String(courses), '--events', String(eventsPerBatch),
  ]
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  children.add(child)
  const cpu = cpuMeter(child.pid!)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk) => (stdout += chunk))
  child.stderr!.on('data', (chunk) => (stderr += chunk))
  const code = await exited(child)
  children.delete(child)
  const cpuSeconds = cpu.stop()
  if (code !== 0) throw new Error(`perf/${script} failed (${code}): ${stderr.trim()}`)
  const line = stdout.trim().split('\n').at(-1)!
  return { ...(JSON.parse(line) as LoopResult), cpuSeconds }
}

interface Api {
  pid: number
  url: string
  groupCommit: boolean
  stop(): Promise<void>
  log: string
}

let apiStarts = 0

async function startApi(groupCommit: boolean): Promise<Api> {
  const port = await freePort()
  const log = path.join(scratch, `api-${++apiStarts}-${groupCommit ? 'gc' : 'direct'}.log`)
  const out = fs.openSync(log, 'a')
  const child = spawn(process.execPath, [path.join(root, 'src', 'bin', 'api.ts')], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      AUTH_JWT_SECRET: secret,
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      GROUP_COMMIT: String(groupCommit),
    },
    stdio: ['ignore', out, out],
  })
  fs.closeSync(out)
  children.add(child)
  const url = `http://127.0.0.1:${port}`
  for (let attempt = 0; ; attempt++) {
    if (child.exitCode !== null) throw new Error(`the API exited (${child.exitCode}) at start: ${fs.readFileSync(log, 'utf8').trim()}`)
    try {
      const res = await fetch(`${url}/api/health`)
      if (res.ok) break
    } catch {
      // not listening yet
    }
    if (attempt > 150) throw new Error(`the API did not become healthy at ${url}: ${fs.readFileSync(log, 'utf8').trim()}`)
    await sleep(200)
  }
  return {
    pid: child.pid!,
    url,
    groupCommit,
    log,
    async stop() {
      child.kill('SIGTERM')
      await exited(child)
      children.delete(child)
    },
  }
}

interface Trend {
  p50: number
  p95: number
  p99: number
  max: number
}

interface K6Run {
  name: string
  groupCommit: boolean
  targetRate: number
  seconds: number
  requests: number
  batchesPerSecond: number
  eventsPerSecond: number
  latencyMs: Trend
  errors: number
  dropped: number
  thresholdsPassed: boolean
  cpuSeconds: CpuSeconds
  /** CPU milliseconds per batch: API + PostgreSQL, and the load generator. */
  cpuMsPerBatch: { server?: number; client: number }
  apiRssMb: { peak: number; last: number }
  /** WAL flushes per batch and their mean time (perf/wal-flushes.ts); absent when the server does not say. */
  walFlushes?: WalFlushDelta & { perBatch: number }
  steps?: RampStep[]
  knee?: RampStep | null
}

interface RampStep {
  step: number
  targetRate: number
  batchesPerSecond: number
  latencyMs: Trend
  errorRate: number
  healthy: boolean
}

type Summary = { metrics: Record<string, Record<string, number>> }

const trend = (metric: Record<string, number> | undefined): Trend => ({
  p50: round(metric?.med ?? 0),
  p95: round(metric?.['p(95)'] ?? 0),
  p99: round(metric?.['p(99)'] ?? 0),
  max: round(metric?.max ?? 0),
})

async function runK6(
  api: Api,
  name: string,
  script: string,
  targetRate: number,
  seconds: number,
  extraEnv: Record<string, string | number> = {},
): Promise<{ run: K6Run; summary: Summary }> {
  const summaryFile = path.join(scratch, `${name}-${api.groupCommit ? 'gc' : 'direct'}-${Date.now()}.json`)
  const env: Record<string, string | number> = {
    BASE_URL: api.url,
    AUTH_JWT_SECRET: secret,
    RATE: targetRate,
    DURATION: `${seconds}s`,
    EVENTS_PER_BATCH: eventsPerBatch,
    LEARNERS: learners,
    COURSES: courses,
    ...extraEnv,
  }
  const args = ['run', '--quiet', '--no-usage-report', '--address', '', '--summary-export', summaryFile]
  for (const [key, value] of Object.entries(env)) args.push('-e', `${key}=${value}`)
  args.push(path.join(root, 'perf', script))
  const child = spawn(k6, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...K6_GC, ...process.env } })
  children.add(child)
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const cpu = cpuMeter(child.pid!, api.pid)
  const walBefore = await wal?.read()
  const rss = watchRss(api.pid)
  const done = ticker(`${name} (group commit ${api.groupCommit ? 'on' : 'off'}, ${targetRate}/s)`, seconds)
  const code = await exited(child)
  done()
  children.delete(child)
  const cpuSeconds = cpu.stop()
  const memory = rss.stop()
  const walFlushes = walBefore && wal ? wal.delta(walBefore, await wal.read()) : undefined
  // 99: thresholds crossed. Still a measurement; anything else is a broken run.
  if (code !== 0 && code !== 99) throw new Error(`k6 ${script} failed (${code}):\n${output.slice(-3000)}`)
  const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as Summary
  const m = summary.metrics
  const requests = m.http_reqs?.count ?? 0
  const server = (cpuSeconds.api ?? 0) + (cpuSeconds.postgres ?? 0)
  const run: K6Run = {
    name,
    groupCommit: api.groupCommit,
    targetRate,
    seconds,
    requests,
    batchesPerSecond: round(requests / seconds, 1),
    eventsPerSecond: round((requests * eventsPerBatch) / seconds, 0),
    latencyMs: trend(m.http_req_duration),
    errors: m.http_req_failed?.passes ?? 0,
    dropped: m.dropped_iterations?.count ?? 0,
    thresholdsPassed: code === 0,
    cpuSeconds,
    cpuMsPerBatch: {
      ...(cpuSeconds.api !== undefined ? { server: requests ? round((server * 1000) / requests, 3) : 0 } : {}),
      client: requests ? round((cpuSeconds.client * 1000) / requests, 3) : 0,
    },
    apiRssMb: { peak: memory.peakMb, last: memory.lastMb },
    ...(walFlushes && requests ? { walFlushes: { ...walFlushes, perBatch: round(walFlushes.flushes / requests) } } : {}),
  }
  return { run, summary }
}

/** The ramp's per-step figures and its knee: the last healthy step before the first unhealthy one. */
function rampSteps(summary: Summary, rates: number[]): { steps: RampStep[]; knee: RampStep | null } {
  const steps = rates.map((targetRate, k) => {
    const m = summary.metrics
    const requests = m[`http_reqs{step:${k + 1}}`]?.count ?? 0
    const latencyMs = trend(m[`http_req_duration{step:${k + 1}}`])
    const errorRate = round(m[`http_req_failed{step:${k + 1}}`]?.value ?? 0, 4)
    const batchesPerSecond = round(requests / plan.rampStep, 1)
    return {
      step: k + 1,
      targetRate,
      batchesPerSecond,
      latencyMs,
      errorRate,
      healthy: requests > 0 && latencyMs.p95 <= KNEE_P95_MS && errorRate === 0 && batchesPerSecond >= 0.95 * targetRate,
    }
  })
  const firstBad = steps.findIndex((step) => !step.healthy)
  const knee = firstBad === -1 ? (steps.at(-1) ?? null) : firstBad === 0 ? null : steps[firstBad - 1]!
  return { steps, knee }
}

async function ramp(api: Api, ceiling: number): Promise<K6Run> {
  const first = Math.max(1, Math.round(plan.ramp.from * ceiling))
  const stepRate = Math.max(1, Math.round(RAMP_STEP_FRACTION * ceiling))
  const count = Math.round((plan.ramp.to - plan.ramp.from) / RAMP_STEP_FRACTION) + 1
  const rates = Array.from({ length: count }, (_, k) => first + stepRate * k)
  const seconds = count * (plan.rampStep + 3)
  const { run, summary } = await runK6(api, 'ramp', 'ramp.js', rates.at(-1)!, seconds, {
    START_RATE: first,
    STEP_RATE: stepRate,
    STEPS: count,
    STEP_DURATION: `${plan.rampStep}s`,
    KNEE_P95_MS,
  })
  return { ...run, ...rampSteps(summary, rates) }
}

// ---------------------------------------------------------------- the run

const started = new Date()
const loadAtStart = os.loadavg().map((v) => round(v))
const results: Record<string, unknown> = {}
try {
  await migrate(sql, { retentionDays: 30, aheadDays: 7 })
  await seedDemo(sql, { learners, courses })
  const [version] = await sql<{ server_version: string }[]>`show server_version`
  // The commit floor: a transaction that writes one tiny WAL record (a
  // transactional logical message, no table) and so must flush its commit.
  // No request that writes durably can answer faster than this disk allows.
  const commits: number[] = []
  for (let k = 0; k < 200; k++) {
    const begun = performance.now()
    await sql`select pg_logical_emit_message(true, 'bench', 'commit floor')`
    commits.push(performance.now() - begun)
  }
  commits.sort((a, b) => a - b)
  const commitFloorMs = { p50: round(percentile(commits, 50)), p95: round(percentile(commits, 95)), p99: round(percentile(commits, 99)) }
  // Only on the bench's own server: ALTER SYSTEM would outlive the run on someone else's.
  let walSegments: number | undefined
  if (postgresPid !== undefined) {
    await enableWalTiming(sql)
    say(`writing and recycling ${RECYCLED_WAL_MB} MB of WAL (a new server has no segments to reuse)`)
    walSegments = await recycleWal(sql, RECYCLED_WAL_MB)
  }
  wal = await walFlushReader(sql)
  say(`seeded ${learners} learners x ${courses} courses; PostgreSQL ${version!.server_version}; commit floor p50 ${commitFloorMs.p50} ms p95 ${commitFloorMs.p95} ms; ${walSegments ?? 'no'} WAL segments recycled; k6 ${k6}${wal?.timed ? '' : wal ? '; WAL flushes counted, not timed (track_wal_io_timing is off)' : '; no WAL statistics before PostgreSQL 14'}`)

  const ceilings: (LoopResult & { cpuSeconds: CpuSeconds })[] = []
  for (const callers of plan.ceilingCallers) {
    const done = ticker(`database ceiling, ${callers} callers`, plan.driverSeconds + 3)
    ceilings.push(await runDriver('db-ceiling.ts', callers, plan.driverSeconds))
    done()
  }
  const ceiling = ceilings.reduce((best, next) => (next.batchesPerSecond > best.batchesPerSecond ? next : best))
  const doneNaive = ticker('naive per-event upserts, 4 callers', plan.driverSeconds + 3)
  const naive = await runDriver('naive.ts', 4, plan.driverSeconds)
  doneNaive()

  const runs: K6Run[] = []
  /** The API's RSS once healthy, before any load: what the load figures compare with. */
  const idleRssMb: Record<'on' | 'off', number> = { on: 0, off: 0 }
  /** Runs `phases` against a fresh API process of that mode. */
  const withApi = async (groupCommit: boolean, phases: (api: Api) => Promise<void>) => {
    const api = await startApi(groupCommit)
    const mode = groupCommit ? 'on' : 'off'
    idleRssMb[mode] ||= rssMb(api.pid)
    try {
      await phases(api)
    } finally {
      await api.stop()
    }
    const warnings = fs.readFileSync(api.log, 'utf8').split('\n').filter((line) => line.trim()).length
    if (warnings > 0) say(`note: the API (group commit ${mode}) logged ${warnings} warning/error lines`)
  }
  const steadyPhases = async (api: Api) => {
    await runK6(api, 'warm-up', 'progress-batch.js', rate, plan.warmup)
    runs.push((await runK6(api, 'progress-batch', 'progress-batch.js', rate, plan.steady)).run)
  }
  // Both steady phases (at --rate) come before any overload: a ramp past the
  // ceiling leaves the database debts (autovacuum of a million rows, dirty
  // buffers, a checkpoint) that the next phase would pay for. Until 2026-11-30
  // the ramp without group commit ran between the two steady phases and so
  // billed the group-commit one.
  await withApi(false, steadyPhases)
  await withApi(true, async (api) => {
    await steadyPhases(api)
    runs.push((await runK6(api, 'mixed', 'mixed.js', rate, plan.mixed)).run)
    runs.push(await ramp(api, ceiling.batchesPerSecond))
    const overload = await runK6(api, 'overload-10x', 'progress-batch.js', rate * 10, plan.overload, { MAX_VUS: 1000 })
    runs.push({ ...overload.run, apiRssMb: { ...overload.run.apiRssMb, last: rssMb(api.pid) } })
  })
  if (plan.rampWithoutGroupCommit) await withApi(false, async (api) => void runs.push(await ramp(api, ceiling.batchesPerSecond)))

  Object.assign(results, {
    startedAt: started.toISOString(),
    mode: quick ? 'quick' : 'full',
    machine: {
      cpus: os.cpus().length, model: os.cpus()[0]?.model, memoryGb: round(os.totalmem() / 2 ** 30, 1), node: process.version,
      // others' work on the machine skews every figure: ratios of this run stay comparable
      loadAverage: { start: loadAtStart, end: os.loadavg().map((v) => round(v)) },
    },
    settings: { rate, learners, courses, eventsPerBatch },
    // WAL segment files ready for reuse before the first phase (own server only; absent before 2026-12-01)
    ...(walSegments !== undefined ? { walSegmentsRecycled: walSegments } : {}),
    commitFloorMs,
    baselines: { ceiling, ceilings, naive },
    apiIdleRssMb: idleRssMb,
    runs,
  })
  const file = path.join(root, 'perf', 'results', `${started.toISOString().replace(/[:.]/g, '-')}.json`)
  fs.mkdirSync(path.dirname(file), { recursive: true })
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`)
  const table = renderTable(results as unknown as Results)
  say(`\n${table}\n`)
  if (!flags['no-docs']) updateDocs(table)
  say(`results: ${path.relative(root, file)}${flags['no-docs'] ? '' : '; table updated in docs/performance.md'}`)
  const steady = runs.find((run) => run.name === 'progress-batch' && run.groupCommit)!
  say(
    `summary: ${rate}/s p50 ${steady.latencyMs.p50} ms p95 ${steady.latencyMs.p95} ms p99 ${steady.latencyMs.p99} ms, ` +
      `${steady.errors} errors, ${steady.dropped} dropped; knee ${runs.find((r) => r.name === 'ramp' && r.groupCommit)?.knee?.batchesPerSecond ?? 'none'}/s ` +
      `vs database ceiling ${ceiling.batchesPerSecond}/s`,
  )
} finally {
  await cleanup()
}

// ---------------------------------------------------------------- report

interface Results {
  startedAt: string
  mode: string
  machine: { cpus: number; model?: string; loadAverage: { start: number[]; end: number[] } }
  settings: { rate: number; eventsPerBatch: number; learners: number }
  commitFloorMs: { p50: number; p95: number; p99: number }
  walSegmentsRecycled?: number
  apiIdleRssMb: { on: number; off: number }
  baselines: { ceiling: LoopResult & { cpuSeconds: CpuSeconds }; naive: LoopResult & { cpuSeconds: CpuSeconds } }
  runs: K6Run[]
}

function renderTable(r: Results): string {
  const { ceiling, naive } = r.baselines
  // PostgreSQL CPU over a baseline driver's whole run, per batch it sent, warm-up
  // included (results saved before allBatches existed: per timed batch).
  const postgresPerBatch = (run: LoopResult & { cpuSeconds: CpuSeconds }) => {
    const batches = run.allBatches ?? run.batches
    return batches ? round(((run.cpuSeconds.postgres ?? 0) * 1000) / batches, 2) : 0
  }
  const lines = [
    `Run ${r.startedAt} (${r.mode}), ${r.machine.cpus} CPUs (${r.machine.model ?? '?'}), load average ${r.machine.loadAverage.start.join(' ')} at the start, ` +
      `${r.machine.loadAverage.end.join(' ')} at the end; ${r.settings.learners} learners, ${r.settings.eventsPerBatch} events per batch; ` +
      `commit floor (a one-record transaction's WAL flush) p50 ${r.commitFloorMs.p50} ms, p95 ${r.commitFloorMs.p95} ms` +
      (r.walSegmentsRecycled !== undefined ? `; ${r.walSegmentsRecycled} WAL segments ready for reuse before the first phase.` : '.'),
    '',
    '| scenario | group commit | target/s | batches/s | p50 ms | p95 ms | p99 ms | errors | dropped | server CPU ms/batch | k6 CPU ms/batch | API RSS peak MB | WAL flushes/batch | WAL flush ms |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ]
  for (const run of r.runs) {
    lines.push(
      `| ${run.name} | ${run.groupCommit ? 'on' : 'off'} | ${run.targetRate} | ${run.batchesPerSecond} | ${run.latencyMs.p50} | ${run.latencyMs.p95} | ` +
        `${run.latencyMs.p99} | ${run.errors} | ${run.dropped} | ${run.cpuMsPerBatch.server ?? '-'} | ${run.cpuMsPerBatch.client} | ${run.apiRssMb.peak} | ` +
        `${run.walFlushes?.perBatch ?? '-'} | ${run.walFlushes?.meanMs ?? '-'} |`,
    )
  }
  lines.push(
    `| database ceiling (${ceiling.callers} callers, no HTTP) | - | max | ${ceiling.batchesPerSecond} | ${ceiling.latencyMs.p50} | ${ceiling.latencyMs.p95} | ` +
      `${ceiling.latencyMs.p99} | ${ceiling.errors} | - | ${postgresPerBatch(ceiling)} (PostgreSQL only) | - | - | - | - |`,
    `| naive per-event upserts (${naive.callers} callers, no HTTP) | - | max | ${naive.batchesPerSecond} | ${naive.latencyMs.p50} | ${naive.latencyMs.p95} | ` +
      `${naive.latencyMs.p99} | ${naive.errors} | - | ${postgresPerBatch(naive)} (PostgreSQL only) | - | - | - | - |`,
  )
  const ramps = r.runs.filter((run) => run.name === 'ramp')
  if (ramps.length > 0) {
    lines.push('', '| ramp step | x ceiling | group commit | target/s | batches/s | p50 ms | p95 ms | p99 ms | error rate | healthy |', '| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |')
    for (const run of ramps) {
      for (const step of run.steps ?? []) {
        // Rates were rounded to whole batches; saved results do not carry the fraction.
        const fraction = Math.round(step.targetRate / ceiling.batchesPerSecond / RAMP_STEP_FRACTION) * RAMP_STEP_FRACTION
        lines.push(
          `| ${step.step} | ${fraction} | ${run.groupCommit ? 'on' : 'off'} | ${step.targetRate} | ${step.batchesPerSecond} | ${step.latencyMs.p50} | ${step.latencyMs.p95} | ` +
            `${step.latencyMs.p99} | ${step.errorRate} | ${step.healthy ? 'yes' : 'no'} |`,
        )
      }
    }
  }
  const steady = (gc: boolean) => r.runs.find((run) => run.name === 'progress-batch' && run.groupCommit === gc)
  const on = steady(true)
  const off = steady(false)
  lines.push('', `API RSS when idle, before load: ${r.apiIdleRssMb.off} MB (group commit off), ${r.apiIdleRssMb.on} MB (on).`)
  lines.push('', 'Ratios (same run):', '')
  for (const run of ramps) {
    const knee = run.knee?.batchesPerSecond ?? 0
    lines.push(`- knee (p95 <= ${KNEE_P95_MS} ms, full rate, no errors), group commit ${run.groupCommit ? 'on' : 'off'}: ${knee} batches/s = **${round(knee / ceiling.batchesPerSecond)}x** the database ceiling (${ceiling.batchesPerSecond} batches/s, one call per batch)`)
  }
  lines.push(`- database ceiling vs naive per-event upserts: **${round(ceiling.batchesPerSecond / naive.batchesPerSecond, 1)}x** the batches/s`)
  if (on && off) {
    lines.push(
      `- at ${on.targetRate}/s, group commit on vs off: p95 ${on.latencyMs.p95} vs ${off.latencyMs.p95} ms, ` +
        `server CPU ${on.cpuMsPerBatch.server ?? '-'} vs ${off.cpuMsPerBatch.server ?? '-'} ms per batch`,
    )
  }
  if (on) {
    const knee = ramps.find((run) => run.groupCommit)?.knee?.batchesPerSecond ?? 0
    const check = (label: string, value: number, limit: number, atMost = true) =>
      `${label} ${value} ${atMost ? '<=' : '>='} ${limit}: ${(atMost ? value <= limit : value >= limit) ? 'met' : '**not met**'}`
    lines.push(
      '',
      `Targets (group commit on, ${on.targetRate}/s): ` +
        [
          check('p50 ms', on.latencyMs.p50, 4),
          check('p95 ms', on.latencyMs.p95, 10),
          check('p99 ms', on.latencyMs.p99, 25),
          check('errors', on.errors, 0),
          check('dropped', on.dropped, 0),
          ...(ramps.length > 0 ? [check('knee / ceiling', round(knee / ceiling.batchesPerSecond), 1, false)] : []),
        ].join('; ') +
        '.',
    )
  }
  return lines.join('\n')
}

function updateDocs(table: string) {
  const file = path.join(root, 'docs', 'performance.md')
  const start = '<!-- bench:results:start -->'
  const end = '<!-- bench:results:end -->'
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : `# Performance\n\n${start}\n${end}\n`
  const from = text.indexOf(start)
  const to = text.indexOf(end)
  if (from === -1 || to < from) {
    say(`note: docs/performance.md has no ${start} ... ${end} markers; table not written there`)
    return
  }
  fs.writeFileSync(file, `${text.slice(0, from + start.length)}\n${table}\n${text.slice(to)}`)
}
