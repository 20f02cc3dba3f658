// 5,000 learners each posting one progress batch every 10 s: a constant
// arrival rate of 500 batches/s of EVENTS_PER_BATCH events (contract section 7).
//   k6 run -e BASE_URL=http://127.0.0.1:3000 -e AUTH_JWT_SECRET=... [-e RATE=500]
//     [-e DURATION=2m] [-e EVENTS_PER_BATCH=10] [-e LEARNERS=5000] [-e COURSES=4] perf/progress-batch.js
// after `npm run seed:demo -- --learners 5000 --courses 4` on the same database.
import { progressEventsJson, slot } from './lib/activity.js'
import { currentScenario, postBatch, PROGRESS_PATH, serviceThresholds, settings, SUMMARY_TREND_STATS } from './lib/k6.js'

const s = settings()

export const options = {
  discardResponseBodies: true,
  scenarios: {
    progress: {
      executor: 'constant-arrival-rate',
      rate: s.rate,
      timeUnit: '1s',
      duration: s.duration,
      preAllocatedVUs: s.preAllocatedVUs,
      maxVUs: s.maxVUs,
    },
  },
  thresholds: serviceThresholds(s),
  summaryTrendStats: SUMMARY_TREND_STATS,
}

const scenario = currentScenario()

export default function () {
  const { learner, round } = slot(scenario().iterationInTest, s.learners)
  postBatch(s, PROGRESS_PATH, learner, progressEventsJson(learner, round, s.eventsPerBatch, s.courses))
}
