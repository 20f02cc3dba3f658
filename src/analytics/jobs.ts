// Learner analytics jobs: daily batch, on-demand recompute, cohorts.
import type { JobDefinition } from '../jobs/definition.ts'

export const analyticsJobs: JobDefinition[] = []
