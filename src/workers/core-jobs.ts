// Partition upkeep, rollups, retention, dead-letter replay, erasure.
import type { JobDefinition } from '../jobs/definition.ts'
import { erasureJob } from './erasure.ts'
import { partitionsJob } from './partitions.ts'
import { replayJob } from './replay.ts'
import { retentionJob } from './retention.ts'
import { rollupJob } from './rollup.ts'

export const coreJobs: JobDefinition[] = [partitionsJob, rollupJob, retentionJob, replayJob, erasureJob]
