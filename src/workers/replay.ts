// Dead-letter replay: events deferred because no assignment linked their user
// and course to an org are ingested once the assignment exists. Each
// replay_dead_letter call takes a bounded chunk, deletes it and ingests it in
// one transaction (rows another replay holds are skipped), so every deferred
// event is ingested exactly once however many replays run. A dead letter that
// can no longer be stored (older than RETENTION_DAYS, or its day's partition
// gone) is deleted and counted as tooOld instead, as direct ingestion would
// reject it: it must not fail the chunk it is in (sql/000043).
import type { JobContext } from '../jobs/definition.ts'
import { job } from '../jobs/definition.ts'

export const REPLAY_CHUNK = 500

export interface ReplaySummary {
  replayed: number
  accepted: number
  duplicates: number
  /** Deleted without ingesting: older than RETENTION_DAYS or without a partition (contract: too_old). */
  tooOld: number
  /** Dead letters left (their assignment does not exist yet). */
  waiting: number
  complete: boolean
}

export async function runReplay(
  { sql, config, signal, progress, log }: Pick<JobContext, 'sql' | 'config' | 'signal' | 'progress'> & Partial<Pick<JobContext, 'log'>>,
  chunk = REPLAY_CHUNK,
): Promise<ReplaySummary> {
  const [before] = await sql<{ n: number }[]>`select count(*)::int as n from dead_letter_events`
  const total = before?.n ?? 0
  const summary: ReplaySummary = { replayed: 0, accepted: 0, duplicates: 0, tooOld: 0, waiting: 0, complete: true }
  progress?.(0, total)
  for (;;) {
    if (signal.aborted) {
      summary.complete = false
      break
    }
    const rows = await sql<{ replayed: number; accepted: number; duplicates: number; too_old: number }[]>`
      select replayed, accepted, duplicates, too_old from replay_dead_letter(null, ${chunk}, ${config.RETENTION_DAYS}::int)`
    if (rows.length === 0) break
    for (const row of rows) {
      summary.replayed += row.replayed
      summary.accepted += row.accepted
      summary.duplicates += row.duplicates
      summary.tooOld += row.too_old
    }
    progress?.(Math.min(summary.replayed + summary.tooOld, total), total)
  }
  const [after] = await sql<{ n: number }[]>`select count(*)::int as n from dead_letter_events`
  summary.waiting = after?.n ?? 0
  if (summary.tooOld > 0) {
    log?.warn({ tooOld: summary.tooOld, retentionDays: config.RETENTION_DAYS }, 'dead letters older than RETENTION_DAYS (or without a partition) discarded as too_old')
  }
  progress?.(total, total)
  return summary
}

export const replayJob = job({
  name: 'replay-dead-letter',
  cron: () => '*/5 * * * *',
  policy: 'stately',
  expireInSeconds: 1800,
  async handler(_data, context) {
    return runReplay(context)
  },
})
