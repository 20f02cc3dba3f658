import fc from 'fast-check'
import t, { type Test } from 'tap'
import {
  afterRequest, backoffDelay, defaultPacingOptions as options, flushInterval, gateOf, idlePacing, MAX_LAG_MS, MAX_RETRY_AFTER_MS,
  nextFlushAt, onClockNow, parseLag, parseRetryAfter, type Observation, type Pacing,
} from '../../src/client/scheduler.ts'

const NOW = 1_700_000_000_000
/** A fast-check property as a tap assertion (fast-check throws with the counterexample). */
const holds = <Ts extends unknown[]>(t: Test, property: fc.IProperty<Ts>) => t.doesNotThrow(() => fc.assert(property))

t.test('flush interval: 1 s when the server is fast, growing with latency, at most 8 s', async (t) => {
  t.equal(flushInterval(0, options), 1000)
  t.equal(flushInterval(100, options), 1400)
  t.equal(flushInterval(60000, options), 8000)
  holds(t, fc.property(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.double({ min: 0, max: 1e6, noNaN: true }), (a, b) => {
    const [low, high] = a <= b ? [a, b] : [b, a]
    const x = flushInterval(low, options)
    const y = flushInterval(high, options)
    return x <= y && x >= 1000 && y <= 8000
  }))
})

t.test('next flush: a full queue goes at the gate, a partial one an interval later; server lag delays both', async (t) => {
  const pacing: Pacing = { ...idlePacing, lastResponseAt: NOW, ewmaMs: 50 }
  t.equal(nextFlushAt(pacing, true, options), NOW)
  t.equal(nextFlushAt(pacing, false, options), NOW + 1200)
  const lagged = { ...pacing, lagMs: 3000 }
  t.equal(nextFlushAt(lagged, true, options), NOW + 3000)
  t.equal(nextFlushAt(lagged, false, options), NOW + 4200)
  const gated = { ...pacing, notBefore: NOW + 20000 }
  t.equal(nextFlushAt(gated, false, options), NOW + 20000, 'Retry-After wins over the interval')
  t.equal(nextFlushAt(idlePacing, false, options), 1000, 'nothing sent yet: the first event goes at once')
})

t.test('backoff doubles from 1 s up to 30 s, with half of it random', async (t) => {
  t.equal(backoffDelay(1, 0, options), 500)
  t.equal(backoffDelay(1, 1, options), 1000)
  t.equal(backoffDelay(3, 1, options), 4000)
  t.equal(backoffDelay(50, 1, options), 30000)
  holds(t, fc.property(fc.integer({ min: 1, max: 60 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, random) => {
    const ceiling = Math.min(30000, 1000 * 2 ** (attempt - 1))
    const delay = backoffDelay(attempt, random, options)
    return delay >= ceiling / 2 && delay <= ceiling
  }))
})

t.test('Retry-After: seconds or an HTTP date, never under 1 s; garbage is ignored', async (t) => {
  t.equal(parseRetryAfter('2', NOW), 2000)
  t.equal(parseRetryAfter(' 45 ', NOW), 45000)
  t.equal(parseRetryAfter('0', NOW), 1000)
  t.equal(parseRetryAfter(new Date(NOW + 5000).toUTCString(), NOW), 5000)
  t.equal(parseRetryAfter(new Date(NOW - 5000).toUTCString(), NOW), 1000)
  t.equal(parseRetryAfter(null, NOW), undefined)
  t.equal(parseRetryAfter('', NOW), undefined)
  t.equal(parseRetryAfter('soon', NOW), undefined)
  t.equal(parseRetryAfter('-3', NOW), undefined)
})

t.test('Retry-After: never over 60 s, however far it points (a day ahead, a date past the range of setTimeout)', async (t) => {
  t.equal(MAX_RETRY_AFTER_MS, 60000)
  t.equal(parseRetryAfter('61', NOW), 60000)
  t.equal(parseRetryAfter('86400', NOW), 60000)
  t.equal(parseRetryAfter('9'.repeat(400), NOW), 60000, 'more digits than a double holds')
  t.equal(parseRetryAfter(new Date(NOW + 30 * 86400000).toUTCString(), NOW), 60000, 'a date 30 days ahead')
  holds(t, fc.property(fc.nat(), (seconds) => {
    const wait = parseRetryAfter(String(seconds), NOW)!
    return wait >= 1000 && wait <= MAX_RETRY_AFTER_MS
  }))
})

t.test('X-Client-Queue-Lag: milliseconds, capped at the contract maximum', async (t) => {
  t.equal(parseLag('0'), 0)
  t.equal(parseLag('1500'), 1500)
  t.equal(parseLag('999999'), MAX_LAG_MS)
  t.equal(parseLag(null), 0)
  t.equal(parseLag('abc'), 0)
  t.equal(parseLag('-5'), 0)
})

t.test('after a request: success resets backoff and records lag and latency', async (t) => {
  const failing: Pacing = { ...idlePacing, attempt: 3, notBefore: NOW - 10 }
  const ok = afterRequest(failing, { kind: 'answered', latencyMs: 80, lagMs: 2500 }, NOW, 0.5, options)
  t.equal(ok.attempt, 0)
  t.equal(ok.lagMs, 2500)
  t.equal(ok.lastLatencyMs, 80)
  t.equal(ok.ewmaMs, 0.3 * 80, 'the average starts from 0: one cold request does not set the pace')
  t.equal(ok.lastResponseAt, NOW)
  const second = afterRequest(ok, { kind: 'answered', latencyMs: 180, lagMs: 0 }, NOW + 1000, 0.5, options)
  t.equal(second.ewmaMs, 0.3 * 180 + 0.7 * 0.3 * 80)
  t.equal(second.lagMs, 0)
})

t.test('after a request: 429/503 wait exactly Retry-After; failures back off', async (t) => {
  const throttled = afterRequest(idlePacing, { kind: 'throttled', latencyMs: 5, lagMs: 0, retryAfterMs: 2000 }, NOW, 0.9, options)
  t.equal(throttled.notBefore, NOW + 2000)
  t.equal(gateOf(throttled), NOW + 2000)
  t.equal(throttled.attempt, 1)
  const noHeader = afterRequest(idlePacing, { kind: 'throttled', latencyMs: 5, lagMs: 0, retryAfterMs: undefined }, NOW, 1, options)
  t.equal(noHeader.notBefore, NOW + 1000, 'no Retry-After: backoff')
  let pacing = idlePacing
  const waits: number[] = []
  for (let i = 0; i < 4; i++) {
    pacing = afterRequest(pacing, { kind: 'failed' }, NOW, 1, options)
    waits.push(pacing.notBefore - NOW)
  }
  t.same(waits, [1000, 2000, 4000, 8000])
  t.equal(pacing.lastResponseAt, 0, 'a network error is not an answer')
})

t.test('after a halved chunk: the next half waits one flush interval, without backoff', async (t) => {
  const halved = afterRequest(idlePacing, { kind: 'answered', latencyMs: 100, lagMs: 0, halved: true }, NOW, 0.5, options)
  t.equal(halved.attempt, 0)
  t.equal(gateOf(halved), NOW + flushInterval(halved.ewmaMs, options))
  const throttled = afterRequest(idlePacing, { kind: 'throttled', latencyMs: 5, lagMs: 0, retryAfterMs: 20000 }, NOW, 0.5, options)
  t.equal(afterRequest(throttled, { kind: 'answered', latencyMs: 5, lagMs: 0, halved: true }, NOW + 1, 0.5, options).notBefore, NOW + 20000, 'a longer wait stays')
})

t.test('the gate never moves back: a later, shorter wait keeps the longer one', async (t) => {
  const observation = fc.oneof(
    fc.record({ kind: fc.constant('answered' as const), latencyMs: fc.nat(5000), lagMs: fc.nat(30000), halved: fc.boolean() }),
    fc.record({ kind: fc.constant('throttled' as const), latencyMs: fc.nat(5000), lagMs: fc.nat(30000), retryAfterMs: fc.option(fc.integer({ min: 1000, max: 60000 }), { nil: undefined }) }),
    fc.constant({ kind: 'failed' as const }),
  )
  holds(t, fc.property(fc.array(fc.tuple(observation, fc.nat(5000), fc.double({ min: 0, max: 1, noNaN: true })), { maxLength: 40 }), (steps) => {
    let pacing = idlePacing
    let now = NOW
    for (const [step, elapsed, random] of steps) {
      now += elapsed
      const next = afterRequest(pacing, step as Observation, now, random, options)
      if (next.notBefore < pacing.notBefore) return false
      if (step.kind !== 'answered' && next.notBefore < now + 500) return false
      pacing = next
    }
    return true
  }))
})

t.test('a clock set back an hour does not hold the queue for the hour: the stored times move back with it', async (t) => {
  const HOUR = 3600000
  // Answered under a clock an hour fast, with 3 s of server lag and a Retry-After of 2 s.
  const answered = afterRequest(idlePacing, { kind: 'throttled', latencyMs: 40, lagMs: 3000, retryAfterMs: 2000 }, NOW + HOUR, 0.5, options)
  t.equal(gateOf(answered), NOW + HOUR + 3000)
  const now = NOW + 500 // the clock corrected, 500 ms after that answer
  const aligned = onClockNow(answered, now)
  t.equal(aligned.lastResponseAt, now)
  t.equal(gateOf(aligned), now + 3000, 'the same waits, from now')
  t.equal(onClockNow(aligned, now + 10), aligned, 'a clock that runs on changes nothing')
  // The next answer is recorded from the stored (unaligned) pacing, as the store hands it over.
  const next = afterRequest(answered, { kind: 'answered', latencyMs: 40, lagMs: 0 }, now + 3000, 0.5, options)
  t.equal(next.lastResponseAt, now + 3000)
  t.ok(gateOf(next) <= now + 3000 + 2000, `gate ${gateOf(next) - now} ms from now, at most the Retry-After after the answer`)
})
