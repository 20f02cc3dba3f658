// A learner's generated progress batch, validated as the API validates it for
// that learner's token: the rows the baseline drivers send, and what a test
// checks the generated events against.
import { prepareProgress, type Prepared, type ProgressRow } from '../src/ingest/validate.ts'
import { DEMO_ORG, progressBatch } from './lib/activity.js'

/** The contract's default time window (RETENTION_DAYS 30, MAX_FUTURE_MS one day). */
const WINDOW = { retentionDays: 30, maxFutureMs: 86400000 }

/** Events validated as the API does for a request with learner-N's token. */
export function prepareAsLearner(learner: number, events: unknown[]): Prepared<ProgressRow> {
  const principal = { userId: `learner-${learner}`, role: 'learner' as const, orgId: DEMO_ORG }
  return prepareProgress(events, principal, WINDOW, new Date().toISOString())
}

export function preparedProgressBatch(learner: number, round: number, eventsPerBatch: number, courses: number): Prepared<ProgressRow> {
  return prepareAsLearner(learner, progressBatch(learner, round, eventsPerBatch, courses))
}
