// Finds the knee: progress batches at a stepped arrival rate, START_RATE then
// + STEP_RATE per step for STEPS steps, each held STEP_DURATION after a short
// ramp. Requests are tagged with their step (`step:1`..), so the summary
// (--summary-export) has latency and count per step; the knee is the highest
// step whose p95 stays under KNEE_P95_MS with the full rate delivered.
//   k6 run -e BASE_URL=... -e AUTH_JWT_SECRET=... [-e START_RATE=250] [-e STEP_RATE=250]
//     [-e STEPS=8] [-e STEP_DURATION=20s] [-e KNEE_P95_MS=50] perf/ramp.js
import { progressEventsJson, slot } from './lib/activity.js'
import { currentScenario, postBatch, PROGRESS_PATH, settings, SUMMARY_TREND_STATS } from './lib/k6.js'

const startRate = Number(__ENV.START_RATE || 250)
const stepRate = Number(__ENV.STEP_RATE || 250)
const steps = Number(__ENV.STEPS || 8)
const stepSeconds = Number.parseInt(__ENV.STEP_DURATION || '20s', 10)
const rampSeconds = 3
const kneeP95Ms = Number(__ENV.KNEE_P95_MS || 50)
const top = startRate + stepRate * (steps - 1)
const s = settings({ rate: top })

const stages = []
for (let k = 0; k < steps; k++) {
  const rate = startRate + stepRate * k
  stages.push({ target: rate, duration: `${rampSeconds}s` }, { target: rate, duration: `${stepSeconds}s` })
}

const thresholds = {
  // the first step must be healthy, or the run says nothing about a knee
  'http_req_duration{step:1}': [`p(95)<${kneeP95Ms}`],
  'http_req_failed{step:1}': ['rate==0'],
}
// Reporting only (always true): these make the summary carry each step's figures.
for (let k = 1; k <= steps; k++) {
  thresholds[`http_req_duration{step:${k}}`] ??= []
  thresholds[`http_req_duration{step:${k}}`].push('max>=0')
  thresholds[`http_reqs{step:${k}}`] = ['count>=0']
  thresholds[`http_req_failed{step:${k}}`] ??= []
  thresholds[`http_req_failed{step:${k}}`].push('rate>=0')
}

export const options = {
  discardResponseBodies: true,
  scenarios: {
    ramp: {
      executor: 'ramping-arrival-rate',
      startRate,
      timeUnit: '1s',
      stages,
      preAllocatedVUs: s.preAllocatedVUs,
      maxVUs: s.maxVUs,
    },
  },
  thresholds,
  summaryTrendStats: SUMMARY_TREND_STATS,
}

/** The step an instant belongs to, or 'ramp' between steps. */
function stepAt(elapsedSeconds) {
  const period = rampSeconds + stepSeconds
  const k = Math.floor(elapsedSeconds / period)
  if (k >= steps || elapsedSeconds - k * period < rampSeconds) return 'ramp'
  return String(k + 1)
}

const scenario = currentScenario()

export default function () {
  const current = scenario()
  const { learner, round } = slot(current.iterationInTest, s.learners)
  const step = stepAt((Date.now() - current.startTime) / 1000)
  postBatch(s, PROGRESS_PATH, learner, progressEventsJson(learner, round, s.eventsPerBatch, s.courses), { step })
}
