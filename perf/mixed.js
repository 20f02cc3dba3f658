// Progress and analytics batches together, to see how the two write paths
// contend: RATE progress batches/s plus ANALYTICS_RATE analytics batches/s
// (default: as many), from the same learners. Options as perf/progress-batch.js.
import { analyticsBatch, progressEventsJson, slot } from './lib/activity.js'
import { ANALYTICS_PATH, currentScenario, postBatch, PROGRESS_PATH, serviceThresholds, settings, SUMMARY_TREND_STATS } from './lib/k6.js'

const s = settings({ p95Ms: 25, p99Ms: 50 })
const analyticsRate = Number(__ENV.ANALYTICS_RATE || s.rate)

const arrival = (rate, exec) => ({
  executor: 'constant-arrival-rate',
  exec,
  rate,
  timeUnit: '1s',
  duration: s.duration,
  preAllocatedVUs: s.preAllocatedVUs,
  maxVUs: s.maxVUs,
})

export const options = {
  discardResponseBodies: true,
  scenarios: { progress: arrival(s.rate, 'progress'), analytics: arrival(analyticsRate, 'analytics') },
  thresholds: {
    ...serviceThresholds(s),
    // per stream, so that one path cannot hide behind the other
    'http_req_duration{scenario:progress}': [`p(95)<${s.p95Ms}`],
    'http_req_duration{scenario:analytics}': [`p(95)<${s.p95Ms}`],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
}

const progressScenario = currentScenario()
const analyticsScenario = currentScenario()

export function progress() {
  const { learner, round } = slot(progressScenario().iterationInTest, s.learners)
  postBatch(s, PROGRESS_PATH, learner, progressEventsJson(learner, round, s.eventsPerBatch, s.courses))
}

export function analytics() {
  const { learner, round } = slot(analyticsScenario().iterationInTest, s.learners)
  postBatch(s, ANALYTICS_PATH, learner, JSON.stringify(analyticsBatch(learner, round, s.eventsPerBatch, s.courses)))
}
