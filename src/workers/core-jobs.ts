// Partition upkeep, rollups, retention, dead-letter replay, erasure.
import type { JobDefinition } from '../jobs/definition.ts'

export const coreJobs: JobDefinition[] = []
