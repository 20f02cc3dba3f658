// Synthetic learner activity, shared by the k6 scenarios and the Node baseline
// drivers so that every figure of a bench run is measured on the same batches.
// Plain JavaScript with no imports: k6 and Node both load it as it is.
//
// Each learner walks through lessons in order. A lesson is five events
// (started, progress 25/50/75, completed), so progress only increases within a
// lesson, and a batch of 10 events covers two lessons. The walk is a function
// of (learner, round): batch n of a learner continues where batch n-1 stopped.

/** Lessons per demo course (scripts/seed-demo.ts DEMO_LESSONS_PER_COURSE). */
export const LESSONS_PER_COURSE = 10
export const DEMO_ORG = 'demo'

const STEPS = [
  ['lesson_started', 0],
  ['lesson_progress', 25],
  ['lesson_progress', 50],
  ['lesson_progress', 75],
  ['lesson_completed', 100],
]

const ANALYTICS_NAMES = ['lesson.view', 'video.play', 'video.pause', 'quiz.answer', 'page.scroll', 'nav.click']

/**
 * Which learner sends the n-th batch of a run, and which of its batches it is:
 * iterations cycle through learner-1..N, so at RATE batches/s each learner
 * sends one batch every N / RATE seconds.
 */
export function slot(iteration, learners) {
  return { learner: (iteration % learners) + 1, round: Math.floor(iteration / learners) }
}

function randomInt(min, max) {
  return min + Math.floor(Math.random() * (max - min + 1))
}

/**
 * The JSON text of a learner's round-th progress batch: an array of contract
 * ProgressEvents. Written as text rather than built as objects and passed to
 * JSON.stringify because k6 runs this for every request on the same two cores
 * as the service, and its interpreter took 0.19 ms a batch the other way, a
 * third of k6's CPU per request (docs/performance.md).
 */
export function progressEventsJson(learner, round, eventsPerBatch, courses, now = Date.now()) {
  let json = '['
  for (let k = 0; k < eventsPerBatch; k++) {
    const position = round * eventsPerBatch + k
    const lessonSlot = Math.floor(position / STEPS.length)
    const step = STEPS[position % STEPS.length] // (destructuring is slow in k6)
    const type = step[0]
    const course = ((learner + Math.floor(lessonSlot / LESSONS_PER_COURSE)) % courses) + 1
    if (k > 0) json += ','
    // occurredAt: spread over the last few seconds, in order, as a client queue would hold them
    json += `{"eventId":"${crypto.randomUUID()}","courseId":"course-${course}","lessonId":"lesson-${(lessonSlot % LESSONS_PER_COURSE) + 1}","type":"${type}","timeSpentMs":${type === 'lesson_started' ? 0 : randomInt(5000, 120000)},"occurredAt":"${new Date(now - (eventsPerBatch - k) * 500).toISOString()}"${type === 'lesson_progress' ? `,"progress":${step[1]}` : type === 'lesson_completed' ? `,"score":${randomInt(40, 100)}` : ''}}`
  }
  return json + ']'
}

/** The same batch as objects, for the Node drivers. */
export function progressBatch(learner, round, eventsPerBatch, courses, now = Date.now()) {
  return JSON.parse(progressEventsJson(learner, round, eventsPerBatch, courses, now))
}

/** The events of a learner's round-th analytics batch (contract AnalyticsEvent). */
export function analyticsBatch(learner, round, eventsPerBatch, courses, now = Date.now()) {
  const events = []
  const course = ((learner + round) % courses) + 1
  for (let k = 0; k < eventsPerBatch; k++) {
    const name = ANALYTICS_NAMES[(round + k) % ANALYTICS_NAMES.length]
    events.push({
      eventId: crypto.randomUUID(),
      name,
      occurredAt: new Date(now - (eventsPerBatch - k) * 500).toISOString(),
      courseId: `course-${course}`,
      lessonId: `lesson-${(round % LESSONS_PER_COURSE) + 1}`,
      sessionId: `s-${learner}-${Math.floor(round / 6)}`,
      properties: name === 'quiz.answer' ? { question: k + 1, correct: Math.random() < 0.7 } : { position: randomInt(0, 600) },
    })
  }
  return events
}
