// Learner erasure (contract section 5), enqueued by
// DELETE /api/v1/orgs/:orgId/users/:userId. One transaction (erase_learner in
// sql/000011_erasure.sql, extended by 000038 and 000041): a retry after a
// failure starts from scratch, and a repeated request finds nothing left and
// leaves a receipt saying so.
import { job, PERSONAL_JOB_KEEP_SECONDS } from '../jobs/definition.ts'
import type { JobRequester } from '../jobs/requester.ts'

export const ERASURE_JOB = 'erase-learner'
/** Ten years: a queued erasure waits for a worker, in effect, for ever. */
const ERASURE_WAITS_SECONDS = 10 * 365 * 24 * 3600

export interface ErasureRequest {
  orgId: string
  userId: string
  requestedBy: JobRequester
  requestedAt: string
}

export const erasureJob = job<ErasureRequest>({
  name: ERASURE_JOB,
  retryLimit: 5,
  expireInSeconds: 1800,
  deleteAfterSeconds: PERSONAL_JOB_KEEP_SECONDS,
  // An accepted erasure must run however long the workers are down, not be
  // deleted unrun after pg-boss's 14 days.
  retentionSeconds: ERASURE_WAITS_SECONDS,
  async handler(data, { sql, jobId }) {
    const [row] = await sql<{ removed: Record<string, number> }[]>`
      select erase_learner(${data.orgId}, ${data.userId}, ${data.requestedBy.userId}, ${jobId ?? null},
                           ${data.requestedAt}::timestamptz) as removed`
    // The run's summary names no user (worker_runs is kept); the receipt does.
    return { orgId: data.orgId, rowsRemoved: row!.removed }
  },
})
