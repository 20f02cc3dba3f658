// Running the analytics computations (the SQL functions of sql/000021-000025):
// one user-role on demand, or every user-role of every org in chunks. The
// work is set-based in the database; this module only hands out chunks.
import type { Sql } from '../db/pool.ts'
import type { AnalyticsRole, UserRoleKey } from './types.ts'

/** Computes and stores one user-role; resolves to the rows written (0 or 1). */
export async function recomputeUserRole(sql: Sql, key: UserRoleKey, now: Date = new Date()): Promise<number> {
  const [row] = await sql<{ stored: number }[]>`
    select refresh_learner_analytics(${key.orgId}, ${key.role}, ${[key.userId]}::text[], ${now}) as stored`
  return row?.stored ?? 0
}

export interface BatchChunk {
  orgId: string
  role: AnalyticsRole
  userIds: string[]
}

export interface BatchOptions {
  /** The "now" every metric is computed for; the same for the whole batch. */
  now?: Date
  /** Users per chunk: one SQL call each. */
  chunkSize?: number
  /** Chunks computed at once (each holds one pool connection). */
  parallel?: number
  /** Stops handing out chunks once aborted. */
  signal?: AbortSignal
  onChunk?: (done: number, total: number) => void
  onChunkError?: (chunk: BatchChunk, error: unknown) => void
}

export interface BatchSummary {
  chunks: number
  userRoles: number
  stored: number
  failedChunks: number
  ms: number
}

export const DEFAULT_CHUNK_SIZE = 500
export const DEFAULT_PARALLEL = 2
/** How long job_requests rows are kept (job status stays readable this long). */
const JOB_REQUEST_RETENTION = '7 days'

/** Every org's chunks in the order sql/000025 gives: learners, instructors, admins. */
export async function batchChunks(sql: Sql, chunkSize = DEFAULT_CHUNK_SIZE): Promise<BatchChunk[]> {
  const rows = await sql<{ org_id: string; role: AnalyticsRole; user_ids: string[] }[]>`
    select org_id, role, user_ids from analytics_batch_chunks(${chunkSize})`
  return rows.map((row) => ({ orgId: row.org_id, role: row.role, userIds: row.user_ids }))
}

/**
 * The daily batch: every user-role, chunk by chunk, `parallel` chunks at a
 * time, in two phases: learners, then instructors and admins (org-wide
 * figures read the activity history the learner phase stores). A failed chunk
 * does not stop the others; the batch throws at the end if any failed, so the
 * queue retries it (recomputing is idempotent).
 */
export async function runDailyBatch(sql: Sql, options: BatchOptions = {}): Promise<BatchSummary> {
  const started = performance.now()
  const now = options.now ?? new Date()
  const chunks = await batchChunks(sql, options.chunkSize ?? DEFAULT_CHUNK_SIZE)
  const parallel = Math.max(1, options.parallel ?? DEFAULT_PARALLEL)
  let done = 0
  let stored = 0
  let failedChunks = 0
  const runPhase = async (phase: BatchChunk[]) => {
    let next = 0
    const lane = async () => {
      while (next < phase.length && !options.signal?.aborted) {
        const chunk = phase[next++] as BatchChunk
        try {
          const [row] = await sql<{ stored: number }[]>`
            select refresh_learner_analytics(${chunk.orgId}, ${chunk.role}, ${chunk.userIds}::text[], ${now}) as stored`
          stored += row?.stored ?? 0
        } catch (error) {
          failedChunks++
          options.onChunkError?.(chunk, error)
        }
        options.onChunk?.(++done, chunks.length)
      }
    }
    await Promise.all(Array.from({ length: Math.min(parallel, Math.max(1, phase.length)) }, lane))
  }
  await runPhase(chunks.filter((chunk) => chunk.role === 'learner'))
  await runPhase(chunks.filter((chunk) => chunk.role !== 'learner'))
  if (options.signal?.aborted) throw new Error(`daily batch stopped after ${done} of ${chunks.length} chunks`)
  await sql`delete from job_requests where requested_at < now() - ${JOB_REQUEST_RETENTION}::interval`
  const summary = {
    chunks: chunks.length,
    userRoles: chunks.reduce((sum, chunk) => sum + chunk.userIds.length, 0),
    stored,
    failedChunks,
    ms: Math.round(performance.now() - started),
  }
  if (failedChunks > 0) throw new Error(`daily batch: ${failedChunks} of ${chunks.length} chunks failed`)
  return summary
}
