// The load generator's batches are written as JSON text by hand (perf/lib/activity.js,
// for k6's sake): they must still be valid JSON and valid contract events.
import t from 'tap'
import { progressBatch, progressEventsJson } from '../../perf/lib/activity.js'
import { prepareAsLearner } from '../../perf/prepared-batch.ts'

t.test('every batch is canonical JSON of contract-valid progress events', async (t) => {
  let checked = 0
  for (const learner of [1, 7, 4999, 5000]) {
    for (const round of [0, 1, 2, 3, 17, 250]) {
      for (const eventsPerBatch of [1, 3, 10, 25]) {
        const text = progressEventsJson(learner, round, eventsPerBatch, 4)
        const events = JSON.parse(text) as Record<string, unknown>[]
        t.equal(JSON.stringify(events), text, 'nothing JSON.stringify would write differently')
        t.equal(events.length, eventsPerBatch)
        const { rows, rejected } = prepareAsLearner(learner, events)
        t.same(rejected, [], `learner ${learner} round ${round}: no event rejected`)
        t.equal(rows.length, eventsPerBatch)
        checked++
      }
    }
  }
  t.equal(checked, 96)
})

t.test('a lesson only moves forward, across batches too', async (t) => {
  const now = Date.now()
  const walk = [0, 1, 2, 3].flatMap((round) => progressBatch(42, round, 10, 4, now + round * 10000))
  const byLesson = new Map<string, Record<string, unknown>[]>()
  for (const event of walk) {
    const key = `${String(event.courseId)}/${String(event.lessonId)}`
    byLesson.set(key, [...(byLesson.get(key) ?? []), event])
  }
  t.equal(byLesson.size, 8, 'four batches of ten events are eight lessons of five')
  for (const [lesson, events] of byLesson) {
    t.same(
      events.map((event) => event.type),
      ['lesson_started', 'lesson_progress', 'lesson_progress', 'lesson_progress', 'lesson_completed'],
      lesson,
    )
    t.same(events.filter((event) => event.type === 'lesson_progress').map((event) => event.progress), [25, 50, 75], lesson)
    const times = events.map((event) => Date.parse(String(event.occurredAt)))
    t.same(times, [...times].sort((a, b) => a - b), `${lesson}: in time order`)
  }
  t.equal(new Set(walk.map((event) => event.eventId)).size, walk.length, 'every event id is new')
})
