// npm run partitions: makes sure the event partitions from RETENTION_DAYS back
// to PARTITIONS_AHEAD_DAYS ahead exist (what workers do at start and hourly).
import { partitionsJob, type PartitionsSummary } from '../src/workers/partitions.ts'
import { parseCliArgs } from './cli-args.ts'
import { openSession, runJobScript } from './job-script.ts'

parseCliArgs('usage: npm run partitions', { options: {} })
// Migrating the embedded database at start would make the partitions itself,
// and this run would then report none created.
const session = await openSession(partitionsJob.name, { partitions: false })
await runJobScript<PartitionsSummary>(
  partitionsJob,
  (result) => `partitions: ${result.created.length} created; daily partitions cover ${result.from} to ${result.to}`,
  session,
)
