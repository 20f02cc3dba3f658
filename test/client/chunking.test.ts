import fc from 'fast-check'
import t, { type Test } from 'tap'
import { bodyBytes, encodeBody, fitsKeepalive, KEEPALIVE_BUDGET_BYTES, takeChunk, utf8Length, type Sized } from '../../src/client/chunking.ts'

const sized = (json: string): Sized => ({ json, bytes: utf8Length(json) })
const event = fc.record({ eventId: fc.uuid(), name: fc.string({ maxLength: 40 }), note: fc.string({ unit: 'grapheme', maxLength: 200 }) }).map((value) => sized(JSON.stringify(value)))
const SENT_AT = new Date().toISOString()
/** A fast-check property as a tap assertion (fast-check throws with the counterexample). */
const holds = <Ts extends unknown[]>(t: Test, property: fc.IProperty<Ts>) => t.doesNotThrow(() => fc.assert(property))

t.test('bodyBytes is the exact UTF-8 size of the body, non-ASCII included', async (t) => {
  holds(t, 
    fc.property(fc.array(event, { maxLength: 30 }), (items) => {
      const body = encodeBody(items, SENT_AT)
      return bodyBytes(items) === Buffer.byteLength(body) && Array.isArray(JSON.parse(body).events)
    }),
  )
  t.equal(bodyBytes([sized('{"a":"é✓😀"}')]), Buffer.byteLength(encodeBody([sized('{"a":"é✓😀"}')], SENT_AT)))
})

t.test('takeChunk: the longest prefix within both limits, never empty', async (t) => {
  holds(t, 
    fc.property(fc.array(event, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 100, max: 6000 }), (items, maxEvents, maxBytes) => {
      const chunk = takeChunk(items, maxEvents, maxBytes)
      if (chunk.length === 0 || chunk.length > maxEvents) return false
      if (chunk.some((item, i) => item !== items[i])) return false
      // Over the byte limit only when one event is too big on its own.
      if (bodyBytes(chunk) > maxBytes && chunk.length !== 1) return false
      // Maximal: one more event would break a limit.
      const next = items[chunk.length]
      return next === undefined || chunk.length === maxEvents || bodyBytes([...chunk, next]) > maxBytes || bodyBytes(chunk) > maxBytes
    }),
  )
  t.same(takeChunk([], 100, 262144), [])
})

t.test('takeChunk at the contract limits: 100 events, 262144 bytes', async (t) => {
  const small = Array.from({ length: 250 }, (_, i) => sized(JSON.stringify({ eventId: String(i) })))
  t.equal(takeChunk(small, 100, 262144).length, 100)
  const big = Array.from({ length: 10 }, () => sized(JSON.stringify({ properties: 'x'.repeat(60000) })))
  const chunk = takeChunk(big, 100, 262144)
  t.equal(chunk.length, 4, 'four 60 KB events fit, five do not')
  t.ok(bodyBytes(chunk) <= 262144)
  t.equal(takeChunk([sized('x'.repeat(300000))], 100, 262144).length, 1, 'an oversized event goes alone')
})

t.test('keepalive budget stays under the 64 KiB fetch limit', async (t) => {
  t.ok(KEEPALIVE_BUDGET_BYTES <= 65536)
  t.ok(fitsKeepalive(KEEPALIVE_BUDGET_BYTES, 0))
  t.notOk(fitsKeepalive(KEEPALIVE_BUDGET_BYTES + 1, 0))
  t.notOk(fitsKeepalive(40000, 30000), 'bodies already in flight count')
})
