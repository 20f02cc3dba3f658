// Every metric of the three roles on the hand-built fixture (fixtures.ts),
// with exact expected values worked out by hand in docs/analytics.md.
import t from 'tap'
import { recomputeUserRole } from '../../src/analytics/compute.ts'
import { testDatabase, testPool } from '../helper.ts'
import { NOW, seedMetricsFixture } from './fixtures.ts'

const zeroWeeks = (from: string, count: number) =>
  Array.from({ length: count }, (_, i) => new Date(Date.parse(`${from}T00:00:00Z`) + i * 7 * 86400000).toISOString().slice(0, 10))

// The 12 ISO weeks ending with the week of 2024-03-05.
const WEEKS = zeroWeeks('2023-12-18', 12)

async function stored(sql: ReturnType<typeof testPool>, userId: string, role: string) {
  const [row] = await sql<{ data: Record<string, unknown>; version: number; computed_at: Date }[]>`
    select data, version, computed_at from learner_analytics where org_id = 'org-a' and user_id = ${userId} and role = ${role}`
  return row
}

t.test('learner metrics', async (t) => {
  const sql = testPool(t, await testDatabase(t))
  await seedMetricsFixture(sql)
  const now = new Date(NOW)
  const [row] = await sql<{ stored: number }[]>`
    select refresh_learner_analytics('org-a', 'learner', array['alice', 'bob', 'carol', 'dave'], ${now}) as stored`
  t.equal(row?.stored, 4)

  const alice = await stored(sql, 'alice', 'learner')
  t.equal(alice?.version, 1)
  t.equal(alice?.computed_at.toISOString(), NOW)
  t.strictSame(alice?.data, {
    coursesEnrolled: 3,
    coursesCompleted: 1,
    lessonsCompleted: 4,
    completionRatePct: 80,
    timeSpent7dMs: 3060000,
    timeSpent30dMs: 3660000,
    activeDays30d: 7,
    currentStreakDays: 2,
    longestStreakDays: 5,
    velocityLessonsPerWeek: 1,
    averageScore: 80,
    lastActiveAt: '2024-03-05T00:30:00.000Z',
    projectedCompletions: [{ courseId: 'c-math', remainingLessons: 1, lessonsPerWeek: 0.75, projectedDate: '2024-03-14' }],
    engagementTrend: { thisWeekMs: 3060000, lastWeekMs: 600000, changePct: 410 },
    topCategory: { category: 'math', sharePct: 67.2 },
    revisitRatePct: 50,
    velocityPercentile: 100,
    atRisk: false,
    activity12w: WEEKS.map((weekStart) => {
      if (weekStart === '2024-01-08') return { weekStart, activeDays: 3, timeSpentMs: 300000, lessonsCompleted: 0 }
      if (weekStart === '2024-02-26') return { weekStart, activeDays: 5, timeSpentMs: 3000000, lessonsCompleted: 3 }
      if (weekStart === '2024-03-04') return { weekStart, activeDays: 2, timeSpentMs: 660000, lessonsCompleted: 1 }
      return { weekStart, activeDays: 0, timeSpentMs: 0, lessonsCompleted: 0 }
    }),
  })

  // No activity at all: zeros and nulls, and at risk (an incomplete course, inactive).
  const bob = await stored(sql, 'bob', 'learner')
  t.strictSame(bob?.data, {
    coursesEnrolled: 1,
    coursesCompleted: 0,
    lessonsCompleted: 0,
    completionRatePct: 0,
    timeSpent7dMs: 0,
    timeSpent30dMs: 0,
    activeDays30d: 0,
    currentStreakDays: 0,
    longestStreakDays: 0,
    velocityLessonsPerWeek: 0,
    averageScore: null,
    lastActiveAt: null,
    projectedCompletions: [],
    engagementTrend: { thisWeekMs: 0, lastWeekMs: 0, changePct: null },
    topCategory: null,
    revisitRatePct: null,
    velocityPercentile: 0,
    atRisk: true,
    activity12w: WEEKS.map((weekStart) => ({ weekStart, activeDays: 0, timeSpentMs: 0, lessonsCompleted: 0 })),
  })

  const carol = (await stored(sql, 'carol', 'learner'))?.data
  t.equal(carol?.velocityLessonsPerWeek, 0.5)
  t.equal(carol?.velocityPercentile, 66.7, 'two of the three peers are slower')
  t.equal(carol?.atRisk, true, 'last active Feb 16: more than 14 days')
  t.equal(carol?.currentStreakDays, 0)
  t.equal(carol?.longestStreakDays, 2)
  t.equal(carol?.revisitRatePct, 0)
  t.strictSame(carol?.projectedCompletions, [{ courseId: 'c-math', remainingLessons: 2, lessonsPerWeek: 0.5, projectedDate: '2024-04-02' }])

  // Only a zero-lesson course: no completion rate, nothing to be at risk on.
  const dave = (await stored(sql, 'dave', 'learner'))?.data
  t.equal(dave?.coursesEnrolled, 1)
  t.equal(dave?.coursesCompleted, 0)
  t.equal(dave?.completionRatePct, null)
  t.equal(dave?.atRisk, false)
  t.strictSame(dave?.projectedCompletions, [])

  // The live days were persisted: the history outlives the event partitions.
  const [days] = await sql<{ n: number }[]>`select count(*)::int as n from learner_activity_days where user_id = 'alice'`
  t.equal(days?.n, 10, '3 stored + 7 synced days')
})

t.test('instructor metrics, per course taught', async (t) => {
  const sql = testPool(t, await testDatabase(t))
  await seedMetricsFixture(sql)
  t.equal(await recomputeUserRole(sql, { orgId: 'org-a', userId: 'ivan', role: 'instructor' }, new Date(NOW)), 1)
  const ivan = (await stored(sql, 'ivan', 'instructor'))?.data as { courses: Record<string, unknown>[] } & Record<string, unknown>
  t.equal(ivan.coursesTaught, 2)
  t.strictSame(ivan.totals, { enrolledLearners: 5, completedLearners: 0, atRiskLearners: 2, lessonsCompleted7d: 3 })
  const [empty, math] = ivan.courses
  t.strictSame(math, {
    courseId: 'c-math',
    lessonCount: 4,
    enrolledLearners: 3,
    startedLearners: 2,
    completedLearners: 0,
    completionFunnel: { enrolled: 3, started: 2, halfway: 2, completed: 0 },
    completionRatePct: 0,
    averageProgressPct: 41.67,
    activeLearners7d: 1,
    activeLearners30d: 2,
    lessonsCompleted7d: 3,
    lessonsCompleted30d: 5,
    averageScore: 67.5,
    scoreDistribution: { '0-49': 0, '50-69': 1, '70-84': 0, '85-100': 1 },
    medianDaysToComplete: null,
    averageTimeSpentMs: 1530000,
    dropOffLesson: { lessonId: 'm2', learners: 1 },
    hardestLesson: { lessonId: 'm2', averageScore: 65 },
    atRiskLearners: { count: 2, userIds: ['bob', 'carol'] },
    engagementTrend: { thisWeekLessons: 3, lastWeekLessons: 0, changePct: null },
    completions12w: WEEKS.map((weekStart) => {
      if (weekStart === '2024-02-12') return { weekStart, lessonsCompleted: 2, learners: 1 }
      if (weekStart === '2024-02-26') return { weekStart, lessonsCompleted: 2, learners: 1 }
      if (weekStart === '2024-03-04') return { weekStart, lessonsCompleted: 1, learners: 1 }
      return { weekStart, lessonsCompleted: 0, learners: 0 }
    }),
  })
  // A course with zero lessons: enrolments count, rates are undefined.
  t.match(empty, {
    courseId: 'c-empty',
    lessonCount: 0,
    enrolledLearners: 2,
    startedLearners: 0,
    completionFunnel: { enrolled: 2, started: 0, halfway: 0, completed: 0 },
    completionRatePct: null,
    averageProgressPct: null,
    atRiskLearners: { count: 0, userIds: [] },
    dropOffLesson: null,
    hardestLesson: null,
  })

  // Someone who teaches nothing gets an empty, well-formed answer.
  await recomputeUserRole(sql, { orgId: 'org-a', userId: 'alice', role: 'instructor' }, new Date(NOW))
  t.strictSame((await stored(sql, 'alice', 'instructor'))?.data, {
    coursesTaught: 0,
    totals: { enrolledLearners: 0, completedLearners: 0, atRiskLearners: 0, lessonsCompleted7d: 0 },
    courses: [],
  })
})

t.test('admin metrics, per org', async (t) => {
  const sql = testPool(t, await testDatabase(t))
  await seedMetricsFixture(sql)
  // As the daily batch does: learners first, which stores their activity history.
  await sql`select refresh_learner_analytics('org-a', 'learner', array['alice', 'bob', 'carol', 'dave'], ${new Date(NOW)})`
  t.equal(await recomputeUserRole(sql, { orgId: 'org-a', userId: 'root', role: 'admin' }, new Date(NOW)), 1)
  t.strictSame((await stored(sql, 'root', 'admin'))?.data, {
    dau: 1,
    wau: 1,
    mau: 2,
    stickinessPct: 50,
    learners: 4,
    instructors: 1,
    courses: 3,
    activeCourses30d: 2,
    enrollments: 6,
    completedEnrollments: 1,
    completionRatePct: 25,
    lessonsCompleted7d: 4,
    lessonsCompleted30d: 6,
    timeSpent30dMs: 4260000,
    atRiskLearners: 2,
    topCourses: [
      { courseId: 'c-art', completionRatePct: 100, enrolled: 1, completed: 1 },
      { courseId: 'c-math', completionRatePct: 0, enrolled: 3, completed: 0 },
    ],
    bottomCourses: [
      { courseId: 'c-math', completionRatePct: 0, enrolled: 3, completed: 0 },
      { courseId: 'c-art', completionRatePct: 100, enrolled: 1, completed: 1 },
    ],
    averageScore: 68,
    activity12w: WEEKS.map((weekStart) => {
      if (weekStart === '2024-01-08') return { weekStart, activeLearners: 1, lessonsCompleted: 0 }
      if (weekStart === '2024-02-12') return { weekStart, activeLearners: 1, lessonsCompleted: 2 }
      if (weekStart === '2024-02-26') return { weekStart, activeLearners: 1, lessonsCompleted: 3 }
      if (weekStart === '2024-03-04') return { weekStart, activeLearners: 1, lessonsCompleted: 1 }
      return { weekStart, activeLearners: 0, lessonsCompleted: 0 }
    }),
  })
})

t.test('a result never replaces one computed for a later now', async (t) => {
  const sql = testPool(t, await testDatabase(t))
  await seedMetricsFixture(sql)
  const key = { orgId: 'org-a', userId: 'alice', role: 'learner' } as const
  t.equal(await recomputeUserRole(sql, key, new Date(NOW)), 1)
  t.equal(await recomputeUserRole(sql, key, new Date('2024-03-01T00:00:00Z')), 0)
  t.equal((await stored(sql, 'alice', 'learner'))?.computed_at.toISOString(), NOW)
})
