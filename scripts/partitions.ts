// npm run partitions: makes sure the event partitions from RETENTION_DAYS back
// to PARTITIONS_AHEAD_DAYS ahead exist (what workers do at start and hourly).
import { partitionsJob, type PartitionsSummary } from '../src/workers/partitions.ts'
import { runJobScript } from './job-script.ts'

await runJobScript<PartitionsSummary>(partitionsJob, (result) =>
  `partitions: ${result.created.length} created; daily partitions cover ${result.from} to ${result.to}`)
