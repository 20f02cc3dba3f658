// Repeating failures are reported at once, then once per interval with how many
// happened since the last report (an outage is a line a minute, not a flood).
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { throttled } from '../src/throttled.ts'

t.test('the first at once, then one per interval with the count since the last', async (t) => {
  const reports: [string, number][] = []
  const report = throttled((value: string, occurrences: number) => reports.push([value, occurrences]), 200)
  report('a')
  report('b')
  report('c')
  t.same(reports, [['a', 1]], 'the first is reported, the next two held back')
  await sleep(250)
  report('d')
  t.same(reports, [['a', 1], ['d', 3]], 'after the interval: the latest, counting the two held back')
  report('e')
  t.equal(reports.length, 2, 'and the interval starts again')
})
