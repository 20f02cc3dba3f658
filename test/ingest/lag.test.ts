// The X-Client-Queue-Lag formula (docs/edge.md): EWMA of call latency, 0 within
// the SLO, gain x excess above it, capped at 30 s, decaying while idle.
import t from 'tap'
import { advisedLagMs, LagMeter, MAX_LAG_MS } from '../../src/ingest/lag.ts'

function meter(options: { sloMs?: number; alpha?: number; gain?: number; idleHalfLifeMs?: number } = {}) {
  let now = 1000
  const lag = new LagMeter({ sloMs: 250, ...options, now: () => now })
  return { lag, advance: (ms: number) => (now += ms) }
}

t.test('advice is 0 within the SLO and gain x excess above it, capped', async (t) => {
  t.equal(advisedLagMs(0, 250, 10), 0)
  t.equal(advisedLagMs(250, 250, 10), 0, 'exactly at the SLO is still fine')
  t.equal(advisedLagMs(251, 250, 10), 10)
  t.equal(advisedLagMs(400, 250, 10), 1500)
  t.equal(advisedLagMs(400.04, 250, 10), 1500, 'whole milliseconds')
  t.equal(advisedLagMs(3250, 250, 10), MAX_LAG_MS)
  t.equal(advisedLagMs(1e9, 250, 10), MAX_LAG_MS, 'capped at 30 s')
})

t.test('a fresh meter advises nothing, and one slow call does not alarm clients', async (t) => {
  const { lag } = meter()
  t.equal(lag.lagMs(), 0)
  t.equal(lag.smoothedMs, 0)
  lag.observe(1000)
  t.equal(lag.smoothedMs, 200, 'EWMA from 0 with alpha 0.2')
  t.equal(lag.lagMs(), 0)
})

t.test('sustained slow calls raise the advice, fast calls bring it back to 0', async (t) => {
  const { lag } = meter()
  const rising: number[] = []
  for (let i = 0; i < 10; i++) {
    lag.observe(800)
    rising.push(lag.lagMs())
  }
  t.ok(rising.every((value, i) => i === 0 || value >= rising[i - 1]!), `non-decreasing: ${rising}`)
  t.ok(rising.at(-1)! > 3000, `advice grows with the excess: ${rising.at(-1)}`)
  // The smoothed value approaches the true latency: 800 * (1 - 0.8^10).
  t.equal(Math.round(lag.smoothedMs), Math.round(800 * (1 - 0.8 ** 10)))

  const falling: number[] = []
  for (let i = 0; i < 20; i++) {
    lag.observe(20)
    falling.push(lag.lagMs())
  }
  t.ok(falling.every((value, i) => i === 0 || value <= falling[i - 1]!), `non-increasing: ${falling}`)
  t.equal(falling.at(-1), 0, 'back to 0 once the database is fast again')
})

t.test('the advice is capped at 30000 ms however slow the database is', async (t) => {
  const { lag } = meter()
  for (let i = 0; i < 50; i++) lag.observe(60000)
  t.equal(lag.lagMs(), MAX_LAG_MS)
})

t.test('with no calls the smoothed latency halves every idleHalfLifeMs', async (t) => {
  const { lag, advance } = meter({ idleHalfLifeMs: 5000 })
  for (let i = 0; i < 30; i++) lag.observe(1000)
  const before = lag.smoothedMs
  t.ok(lag.lagMs() > 0)
  advance(5000)
  t.equal(Math.round(lag.smoothedMs), Math.round(before / 2))
  advance(5000)
  t.equal(Math.round(lag.smoothedMs), Math.round(before / 4))
  advance(30000)
  t.equal(lag.lagMs(), 0, 'a silent period ends the advice')
  // The next sample blends with the decayed value, not the stale one.
  const decayed = lag.smoothedMs
  lag.observe(100)
  t.equal(lag.smoothedMs, 0.2 * 100 + 0.8 * decayed)
})

t.test('gain and alpha are configurable; alpha must be in (0, 1]', async (t) => {
  const { lag } = meter({ alpha: 1, gain: 2, sloMs: 100 })
  lag.observe(600)
  t.equal(lag.smoothedMs, 600, 'alpha 1 follows the last sample')
  t.equal(lag.lagMs(), 1000)
  t.throws(() => new LagMeter({ sloMs: 1, alpha: 0 }), RangeError)
  t.throws(() => new LagMeter({ sloMs: 1, alpha: 1.5 }), RangeError)
})
