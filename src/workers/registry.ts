// Every job the worker processes run.
import { analyticsJobs } from '../analytics/jobs.ts'
import type { JobDefinition } from '../jobs/definition.ts'
import { coreJobs } from './core-jobs.ts'

export const jobs: JobDefinition[] = [...coreJobs, ...analyticsJobs]
