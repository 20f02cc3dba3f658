// Scenario 6: kill -9 the API process under load and restart it. Clients that
// lost their connection resend the same batches until acknowledged; at the end
// the database holds exactly the unique events sent, with consistent progress.
import t from 'tap'
import { testDatabase, testPool } from '../helper.ts'
import {
  ApiProcess, checkExactlyOnce, learnerTokens, LoadStats, planBatches, reportFigures, runLearners, seedLearners, sized, sleep, waitFor,
  type Learner,
} from './support.ts'

const size = sized({
  ci: { learners: 30, batches: 12, kills: 1 },
  full: { learners: 200, batches: 40, kills: 4 },
})
const EVENTS_PER_BATCH = 10
const LESSONS = 8

t.test('kill -9 under load: restart, resend, exactly once', async (t) => {
  const url = await testDatabase(t)
  const sql = testPool(t, url)
  const userIds = await seedLearners(sql, { orgId: 'org-crash', learners: size.learners, courses: 1, lessonCount: LESSONS })
  const tokens = await learnerTokens(userIds)
  const learners: Learner[] = userIds.map((userId, i) => ({
    token: tokens[i]!,
    batches: planBatches(userId, { batches: size.batches, eventsPerBatch: EVENTS_PER_BATCH, courseId: 'course-1', lessons: LESSONS }),
  }))
  const totalBatches = size.learners * size.batches

  const api = await ApiProcess.start(t, { databaseUrl: url })
  const stats = new LoadStats()
  const started = Date.now()
  const load = runLearners(learners, { baseUrl: api.url, stats, deadline: started + sized({ ci: 45000, full: 240000 }) })

  // Kill at evenly spaced points of progress, while batches are in flight.
  const outages: number[] = []
  for (let kill = 1; kill <= size.kills; kill++) {
    await waitFor(`${kill}/${size.kills + 1} of the batches acknowledged`, () => stats.acknowledged >= (totalBatches * kill) / (size.kills + 1), 60000, 5)
    const pid = api.pid
    const down = Date.now()
    await api.kill9()
    await sleep(200) // clients see refused connections meanwhile
    await api.restart()
    outages.push(Date.now() - down)
    t.not(api.pid, pid, `restart ${kill} is a new process`)
  }
  const { misaccounted } = await load
  const seconds = (Date.now() - started) / 1000

  t.equal(stats.acknowledged, totalBatches, 'every batch was eventually acknowledged')
  t.equal(misaccounted.length, 0, `every 200 accounts for each event once (${misaccounted[0] ?? 'ok'})`)
  t.ok(stats.connectionErrors > 0, 'the clients did see the crash (refused or reset connections)')
  t.equal(stats.unexpected5xx, 0, 'no 5xx other than 503')
  t.same(stats.malformedErrors, [], 'every error answer has the coded body')
  t.equal(stats.missingLagHeader, 0, 'every answer carries X-Client-Queue-Lag')
  const report = await checkExactlyOnce(t, sql, learners.flatMap((learner) => learner.batches.flat()))
  t.ok(stats.duplicates > 0, 'resent events were reported as duplicates, not stored again')

  reportFigures(t, 'crash', {
    learners: size.learners,
    batches: totalBatches,
    eventsSent: totalBatches * EVENTS_PER_BATCH,
    uniqueEvents: report.expected,
    stored: report.stored,
    missing: report.missing,
    kills: size.kills,
    restartMs: outages,
    seconds: Math.round(seconds * 10) / 10,
    ...stats.summary(),
  })
})
