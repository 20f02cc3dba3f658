// Partition upkeep: daily partitions of both event tables from RETENTION_DAYS
// back to PARTITIONS_AHEAD_DAYS ahead always exist. Runs when a worker starts
// and hourly; ensure_partitions serialises concurrent callers.
import { ensurePartitions } from '../db/migrate.ts'
import type { JobContext } from '../jobs/definition.ts'
import { job } from '../jobs/definition.ts'

export interface PartitionsSummary {
  created: string[]
  from: string | null
  to: string | null
}

export async function runPartitions({ sql, config, progress }: Pick<JobContext, 'sql' | 'config' | 'progress'>): Promise<PartitionsSummary> {
  progress?.(0, 1)
  const created = await ensurePartitions(sql, config.RETENTION_DAYS, config.PARTITIONS_AHEAD_DAYS)
  const [range] = await sql<{ from: string | null; to: string | null }[]>`
    select from_day::text as from, to_day::text as to from partition_range('progress_events')`
  progress?.(1, 1)
  return { created, from: range?.from ?? null, to: range?.to ?? null }
}

export const partitionsJob = job({
  name: 'partitions',
  cron: () => '0 * * * *',
  policy: 'stately',
  expireInSeconds: 600,
  async handler(_data, context) {
    return runPartitions(context)
  },
})
