// Incremental org rollups (design and exactly-once argument: docs/workers.md
// and sql/000010_rollups.sql). A run reads the window [low, high) of
// transaction ids, finds the orgs with rows in it, and brings each org up to
// `high` in bounded chunks, several orgs at once. Each chunk commits its
// counts with the org's new mark; the global mark moves only once every org
// is done, so a run stopped or killed anywhere is finished by the next one.
import type { JobContext } from '../jobs/definition.ts'
import { job } from '../jobs/definition.ts'
import { eachBounded } from '../jobs/each-bounded.ts'
import type { Sql } from '../db/pool.ts'
import { JobLocks, withJobLock } from './advisory-lock.ts'

export const ROLLUP_CONCURRENCY = 4
/** Events per chunk: one transaction of bounded size per org step. */
export const ROLLUP_CHUNK_EVENTS = 20000

export interface RollupOptions {
  concurrency?: number
  chunkEvents?: number
  /**
   * Take the rollup lock so runs never overlap (the default). Correctness does
   * not depend on it, since orgs are serialised by their watermark rows; the
   * lock only saves a second run the wasted work.
   */
  exclusive?: boolean
  /** With the lock taken by another run, wait this long for it instead of skipping. */
  waitMs?: number
}

export interface RollupSummary {
  orgs: number
  orgsDone: number
  events: number
  chunks: number
  /** False when stopped (SIGTERM) before every org was done. */
  complete: boolean
  skipped?: string
}

type RunContext = Pick<JobContext, 'sql' | 'signal' | 'progress'>

export async function runRollup(context: RunContext, options: RollupOptions = {}): Promise<RollupSummary> {
  if (options.exclusive === false) return rollupPass(context, options)
  const result = await withJobLock(context.sql, JobLocks.rollup, () => rollupPass(context, options), {
    ...(options.waitMs ? { waitMs: options.waitMs } : {}),
    signal: context.signal,
  })
  return result ?? { orgs: 0, orgsDone: 0, events: 0, chunks: 0, complete: false, skipped: 'another rollup run is in progress' }
}

async function rollupPass({ sql, signal, progress }: RunContext, options: RollupOptions): Promise<RollupSummary> {
  const [window] = await sql<{ low: string; high: string }[]>`select xid_low::text as low, xid_high::text as high from rollup_window()`
  const { low, high } = window!
  const summary: RollupSummary = { orgs: 0, orgsDone: 0, events: 0, chunks: 0, complete: true }
  if (BigInt(low) >= BigInt(high)) return summary
  const orgs = (await changedOrgs(sql, low, high)).sort()
  summary.orgs = orgs.length
  progress?.(0, orgs.length)
  await eachBounded(orgs, options.concurrency ?? ROLLUP_CONCURRENCY, async (org) => {
    for (;;) {
      if (signal.aborted) {
        summary.complete = false
        return
      }
      const [chunk] = await sql<{ events: number; done: boolean }[]>`
        select events, done from rollup_org_chunk(${org}, ${high}::xid8, ${options.chunkEvents ?? ROLLUP_CHUNK_EVENTS})`
      summary.events += chunk!.events
      summary.chunks++
      if (chunk!.done) break
    }
    summary.orgsDone++
    progress?.(summary.orgsDone, orgs.length)
  })
  if (summary.complete) await sql`select rollup_advance(${high}::xid8)`
  return summary
}

async function changedOrgs(sql: Sql, low: string, high: string): Promise<string[]> {
  const rows = await sql<{ org_id: string }[]>`select org_id from rollup_changed_orgs(${low}::xid8, ${high}::xid8) as org_id`
  return rows.map((row) => row.org_id)
}

export const rollupJob = job({
  name: 'rollup',
  // Every 5 minutes: a run reads only what changed, so frequent runs are cheap.
  cron: () => '*/5 * * * *',
  policy: 'stately',
  expireInSeconds: 3600,
  async handler(_data, context) {
    return runRollup(context)
  },
})
