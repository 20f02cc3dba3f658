// Scenario 9: thousands of generated malformed or hostile requests (fast-check)
// against the real app and a real database, in process (app.inject): wrong
// types, huge strings, deep nesting, unicode edge cases, prototype keys,
// duplicate keys, truncated JSON, wrong content types, forged tokens, oversized
// bodies, other learners' userIds. Never a 5xx; every whole-request reject has
// the coded body; each rejected event is named by index; and the rows written
// are exactly those the 200 answers reported stored: nothing rejected is written.
import { createHmac, randomUUID } from 'node:crypto'
import fc from 'fast-check'
import t from 'tap'
import { mintToken } from '../../src/auth/tokens.ts'
import { Errors } from '../../src/errors.ts'
import { build, seedOrg, TEST_SECRET } from '../helper.ts'
import { isCodedError, percentile, reportFigures, round, sized } from './support.ts'

const RUNS = sized({ ci: 2000, full: 12000 })
const SEED = Number(process.env.RELIABILITY_SEED ?? Date.now() % 2 ** 31)
const MAX_BATCH_EVENTS = 100
const MAX_BATCH_BYTES = 262144
const DAY = 86400000

// Every eventId placeholder becomes a fresh UUID when the request is sent, so
// no two generated events collide and "accepted" means newly stored.
const FRESH = 'ffffffff-ffff-4fff-bfff-ffffffffffff'
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/
const EVENT_NAME = /^[a-z0-9_.:-]{1,64}$/
const PROGRESS_TYPES = ['lesson_started', 'lesson_progress', 'lesson_completed']
const FORBIDDEN_KEYS = ['__proto__', 'constructor', 'prototype']

type Stream = 'progress' | 'analytics'
type Rejection = 'invalid_event' | 'too_old' | 'in_future'
type Json = Record<string, unknown>

/** What the contract demands of the answer. */
type Expectation =
  /** A whole-request refusal with one of these statuses (and its catalogue code, when given). */
  | { kind: 'refused'; statuses: number[]; code?: string }
  /** 200: exactly these indexes rejected, with these codes; every other event stored. */
  | { kind: 'per-event'; rejected: Map<number, Rejection>; events: number }
  /** Either a coded 4xx or a 200 that rejects every event (the contract allows both). */
  | { kind: 'nothing-stored'; events: number }
  /** Read routes: any answer below 500. */
  | { kind: 'safe' }

interface Case {
  category: string
  method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'
  url: string
  headers: Record<string, string>
  payload?: string
  stream?: Stream
  expect: Expectation
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const ago = (ms: number) => new Date(Date.now() - ms).toISOString()

// ---------------------------------------------------------------- strings

/** Unicode the database stores fine: RTL marks, emoji, combining marks, BOM, controls other than NUL. */
const awkwardUnicode = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }),
  fc.constantFrom('\u202eevil\u202c', 'שלום', 'مرحبا', '\u200f\u200e', '👩‍👩‍👧‍👦', 'e\u0301\u0301', '\ufeffbom', '\u2028\u2029', '\u0001\u001f', '\uffff', '𝕏'),
).filter((s) => s.length >= 1 && s.length <= 128 && !s.includes('\u0000') && s.isWellFormed())

/** Strings PostgreSQL cannot store: NUL, unpaired surrogates. */
const unstorable = fc
  .tuple(fc.string({ maxLength: 8 }), fc.constantFrom('\u0000', '\ud800', '\udfff', '\udbff', '\udc00', '\u0000\u0000'), fc.string({ maxLength: 8 }))
  .map(([a, bad, b]) => a + bad + b)

const hugeString = fc.integer({ min: 129, max: 20000 }).map((n) => 'x'.repeat(n))

/** Non-strings, for string fields. Dictionary keys are plain: a `__proto__` key is another category. */
const notAString = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.stringMatching(/^[a-z]{1,5}$/), fc.integer(), { maxKeys: 2 }),
)
const notANumber = fc.oneof(fc.string({ maxLength: 10 }), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }))

const badId = fc.oneof(notAString, fc.constant(''), hugeString, unstorable)
const badDate = fc
  .oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom(
      '2024-02-30T00:00:00Z', '2024-13-01T00:00:00Z', '2024-01-01T25:00:00Z', '2024-01-01', '2024-01-01T00:00:00',
      'yesterday', '1700000000000', '2024-01-01T00:00:00.1234567890Z', '+002024-01-01T00:00:00Z',
      '2024-01-01T00:00:00Z[Europe/Paris]', `${ago(DAY)}\u0000`, ago(DAY).replace('Z', '+25:00'),
    ),
    notAString,
  )
  .filter((value) => !(typeof value === 'string' && DATE_TIME.test(value) && Number.isFinite(Date.parse(value)) && !value.includes('+25')))

// ---------------------------------------------------------------- valid events

const recent = fc.integer({ min: 60000, max: 20 * DAY }).map(ago)

const validProgress = fc
  .record({
    lessonId: fc.oneof(fc.constantFrom('lesson-1', 'lesson-2', 'lesson-3'), awkwardUnicode),
    type: fc.constantFrom(...PROGRESS_TYPES),
    progress: fc.integer({ min: 0, max: 100 }),
    timeSpentMs: fc.integer({ min: 0, max: DAY }),
    score: fc.option(fc.double({ min: 0, max: 100, noNaN: true }), { nil: undefined }),
    occurredAt: recent,
  })
  .map(({ score, ...event }): Json => ({ eventId: FRESH, courseId: 'course-1', ...event, ...(score === undefined ? {} : { score }) }))

function depthOf(value: unknown): number {
  if (value === null || typeof value !== 'object') return 0
  return 1 + Math.max(0, ...Object.values(value).map(depthOf))
}
function storable(value: unknown): boolean {
  if (typeof value === 'string') return !value.includes('\u0000') && value.isWellFormed()
  if (value === null || typeof value !== 'object') return true
  return Object.entries(value).every(([key, item]) => !FORBIDDEN_KEYS.includes(key) && storable(key) && storable(item))
}

const validProperties = fc
  .dictionary(fc.string({ unit: 'binary', maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 })
  .filter((properties) => storable(properties) && depthOf(properties) <= 4 && Buffer.byteLength(JSON.stringify(properties)) <= 8192)

const validAnalytics = fc
  .record({
    name: fc.stringMatching(EVENT_NAME),
    occurredAt: recent,
    sessionId: fc.option(awkwardUnicode, { nil: undefined }),
    properties: fc.option(validProperties, { nil: undefined }),
  })
  .map(({ sessionId, properties, ...event }): Json => ({
    eventId: FRESH,
    courseId: 'course-1',
    ...event,
    ...(sessionId === undefined ? {} : { sessionId }),
    ...(properties === undefined ? {} : { properties }),
  }))

// ---------------------------------------------------------------- hostile events

interface Mutation {
  set?: Json
  drop?: string
  code: Rejection
}

const set = (field: string, value: fc.Arbitrary<unknown>, code: Rejection = 'invalid_event') =>
  value.map((v): Mutation => ({ set: { [field]: v }, code }))

const commonMutations = (required: string[], known: string[]) => [
  set('eventId', fc.oneof(fc.string({ maxLength: 50 }).filter((s) => !UUID.test(s)), fc.constant(`${FRESH}0`), notAString, unstorable)),
  set('occurredAt', badDate),
  set('occurredAt', fc.integer({ min: 30 * DAY + 60000, max: 3650 * DAY }).map(ago), 'too_old'),
  set('occurredAt', fc.integer({ min: DAY + 60000, max: 365 * DAY }).map((ms) => ago(-ms)), 'in_future'),
  fc
    .tuple(fc.stringMatching(/^[A-Za-z_$][\w$]{0,15}$/), fc.oneof(notAString, fc.string({ maxLength: 10 })))
    .filter(([key]) => !known.includes(key) && !FORBIDDEN_KEYS.includes(key))
    .map(([key, value]): Mutation => ({ set: { [key]: value }, code: 'invalid_event' })),
  fc.constantFrom(...required).map((field): Mutation => ({ drop: field, code: 'invalid_event' })),
]

const PROGRESS_FIELDS = ['eventId', 'userId', 'courseId', 'lessonId', 'type', 'progress', 'timeSpentMs', 'score', 'occurredAt']
const progressMutation = fc.oneof(
  ...commonMutations(['eventId', 'courseId', 'lessonId', 'type', 'occurredAt'], PROGRESS_FIELDS),
  set('courseId', badId),
  set('lessonId', badId),
  set('type', fc.oneof(fc.string({ maxLength: 20 }).filter((s) => !PROGRESS_TYPES.includes(s)), notAString)),
  set('progress', fc.oneof(fc.integer({ min: 101 }), fc.integer({ max: -1 }), fc.double({ min: 100.001, max: 1e300, noNaN: true }), notANumber)),
  set('timeSpentMs', fc.oneof(fc.integer({ min: DAY + 1 }), fc.integer({ max: -1 }), fc.integer({ min: 0, max: 1e6 }).map((n) => n + 0.5), notANumber)),
  set('score', fc.oneof(fc.integer({ min: 101 }), fc.double({ min: -1e300, max: -0.001, noNaN: true }), notANumber)),
  // progress is required for lesson_progress only
  fc.constant<Mutation>({ set: { type: 'lesson_progress' }, drop: 'progress', code: 'invalid_event' }),
)

/** `levels` nested objects (or arrays) around a leaf. */
const nested = (levels: number, array: boolean): unknown => {
  let value: unknown = 1
  for (let i = 0; i < levels; i++) value = array ? [value] : { a: value }
  return value
}

const ANALYTICS_FIELDS = ['eventId', 'userId', 'name', 'occurredAt', 'courseId', 'lessonId', 'sessionId', 'properties']
const analyticsMutation = fc.oneof(
  ...commonMutations(['eventId', 'name', 'occurredAt'], ANALYTICS_FIELDS),
  set('name', fc.oneof(fc.string({ maxLength: 80 }).filter((s) => !EVENT_NAME.test(s)), notAString)),
  set('sessionId', badId),
  set('lessonId', badId),
  set('properties', fc.oneof(fc.array(fc.integer(), { maxLength: 3 }), fc.string({ maxLength: 10 }), fc.integer(), fc.boolean(), fc.constant(null))),
  // too big: over 8 KB serialized (multi-byte characters count as bytes)
  set('properties', fc.oneof(fc.integer({ min: 8200, max: 40000 }).map((n) => ({ blob: 'x'.repeat(n) })), fc.constant({ blob: 'é'.repeat(4100) }))),
  // too deep: more than 4 levels
  set('properties', fc.tuple(fc.integer({ min: 5, max: 400 }), fc.boolean()).map(([levels, array]) => (array ? { a: nested(levels - 1, true) } : nested(levels, false)))),
  // prototype keys as plain keys (`__proto__` as raw JSON text: another category)
  set('properties', fc.tuple(fc.constantFrom('constructor', 'prototype'), fc.integer({ min: 1, max: 4 })).map(([key, depth]) => keyAtDepth(depth, key))),
  set('properties', fc.oneof(unstorable.map((s) => ({ [s]: 1 })), unstorable.map((s) => ({ note: s })), unstorable.map((s) => ({ list: [1, s] })))),
)

/** An object `depth` levels deep whose innermost key is `key`. */
function keyAtDepth(depth: number, key: string): unknown {
  let value: unknown = { [key]: 1 }
  for (let i = 1; i < depth; i++) value = { a: value }
  return value
}

function mutate(event: Json, mutation: Mutation): Json {
  const result = { ...event, ...mutation.set }
  if (mutation.drop) delete result[mutation.drop]
  return result
}

interface Slot {
  event: Json
  rejected?: Rejection
}

const hostileEvent = (stream: Stream) =>
  stream === 'progress'
    ? fc.tuple(validProgress, progressMutation).map(([event, m]): Slot => ({ event: mutate(event, m), rejected: m.code }))
    : fc.tuple(validAnalytics, analyticsMutation).map(([event, m]): Slot => ({ event: mutate(event, m), rejected: m.code }))

const validEvent = (stream: Stream) => (stream === 'progress' ? validProgress : validAnalytics).map((event): Slot => ({ event }))

const PATHS: Record<Stream, { batch: string; single: string }> = {
  progress: { batch: '/api/client/progress/batch', single: '/api/client/progress/lesson' },
  analytics: { batch: '/api/analytics/events/batch', single: '/api/analytics/events' },
}
const streamArb = fc.constantFrom<Stream>('progress', 'analytics')

// ---------------------------------------------------------------- request categories

/**
 * Percent-encodes every UTF-16 code unit's bytes, unpaired surrogates included
 * (as their 3-byte forms, which are not valid UTF-8): encodeURIComponent
 * refuses those, and a hostile client would not.
 */
function percentEncode(value: string): string {
  let out = ''
  for (const char of value) {
    const code = char.codePointAt(0)!
    const bytes = code >= 0xd800 && code <= 0xdfff ? [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)] : [...Buffer.from(char)]
    out += bytes.map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join('')
  }
  return out
}

interface Tokens {
  alice: string
  service: string
  forged: string[]
}

function categories(tokens: Tokens) {
  const json = { 'content-type': 'application/json', authorization: `Bearer ${tokens.alice}` }
  const post = (stream: Stream, payload: string, expect: Expectation, category: string, headers: Record<string, string> = json): Case => ({
    category,
    method: 'POST',
    url: PATHS[stream].batch,
    headers,
    payload,
    stream,
    expect,
  })
  const batchOf = (stream: Stream, max = 4) => fc.array(validEvent(stream), { maxLength: max }).map((slots) => slots.map((s) => s.event))

  // One or more bad events among good ones: each bad one rejected by index, the rest stored.
  const mixedBatch = streamArb.chain((stream) =>
    fc.array(fc.oneof({ weight: 2, arbitrary: hostileEvent(stream) }, { weight: 1, arbitrary: validEvent(stream) }), { minLength: 1, maxLength: 8 }).map((slots) => {
      const rejected = new Map<number, Rejection>()
      slots.forEach((slot, index) => slot.rejected && rejected.set(index, slot.rejected))
      const sentAt = new Date().toISOString()
      return post(stream, JSON.stringify({ events: slots.map((s) => s.event), sentAt }), { kind: 'per-event', rejected, events: slots.length }, 'bad events in a batch')
    }),
  )

  // The single-event routes: one bad event, rejected at index 0.
  const singleEvent = streamArb.chain((stream) =>
    hostileEvent(stream).map((slot): Case => ({
      ...post(stream, JSON.stringify(slot.event), { kind: 'per-event', rejected: new Map([[0, slot.rejected!]]), events: 1 }, 'bad single event'),
      url: PATHS[stream].single,
    })),
  )

  // Valid events whose strings are awkward but storable: RTL, emoji, combining marks; service tokens for other users.
  const awkwardButValid = fc.oneof(
    streamArb.chain((stream) =>
      batchOf(stream, 6).map((events) => post(stream, JSON.stringify({ events }), { kind: 'per-event', rejected: new Map(), events: events.length }, 'awkward but valid')),
    ),
    fc.tuple(streamArb, awkwardUnicode).chain(([stream, userId]) =>
      batchOf(stream, 3).map((events) =>
        post(stream, JSON.stringify({ events: events.map((e) => ({ ...e, userId })) }), { kind: 'per-event', rejected: new Map(), events: events.length }, 'service token, other users', {
          ...json,
          authorization: `Bearer ${tokens.service}`,
        }),
      ),
    ),
  )

  const truncatedJson = fc.tuple(streamArb, fc.nat()).chain(([stream, cut]) =>
    batchOf(stream).map((events) => {
      const text = JSON.stringify({ events })
      return post(stream, text.slice(0, 1 + (cut % (text.length - 1))), { kind: 'refused', statuses: [400], code: 'INVALID_JSON' }, 'truncated JSON')
    }),
  )

  const notJson = fc.tuple(streamArb, fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('', ' ', 'null', '[]', '"events"', '42', 'true', '{}', '{"events":}', "{'events':[]}", '{"events":[],}', 'NaN')))
    .map(([stream, text]) => post(stream, text, { kind: 'refused', statuses: [400] }, 'not a JSON object'))

  // `events` not an array (an object, a scalar, null): 400, never coerced into a batch of one.
  const wrongEnvelope = fc.oneof(
    fc.tuple(streamArb, fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.integer(), { maxKeys: 3 })).map(([stream, events]) =>
      post(stream, JSON.stringify({ events }), { kind: 'refused', statuses: [400], code: 'INVALID_BODY' }, 'events not an array'),
    ),
    fc.tuple(streamArb, fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.boolean(), fc.constant(null))).map(([stream, events]) =>
      post(stream, JSON.stringify({ events }), { kind: 'refused', statuses: [400], code: 'INVALID_BODY' }, 'events not an array'),
    ),
    fc.tuple(streamArb, fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 5 }), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 })), { minLength: 1, maxLength: 5 })).map(
      ([stream, events]) => post(stream, JSON.stringify({ events }), { kind: 'nothing-stored', events: events.length }, 'events not objects'),
    ),
    fc.tuple(streamArb, fc.oneof(fc.string({ maxLength: 30 }).filter((s) => !DATE_TIME.test(s)), notAString)).chain(([stream, sentAt]) =>
      batchOf(stream).map((events) => post(stream, JSON.stringify({ events, sentAt }), { kind: 'refused', statuses: [400], code: 'INVALID_BODY' }, 'bad sentAt')),
    ),
    fc.tuple(streamArb, fc.constantFrom('{}', '{"sentAt":"2026-01-01T00:00:00Z"}', '{"event":[]}', '{"Events":[]}')).map(([stream, text]) =>
      post(stream, text, { kind: 'refused', statuses: [400], code: 'INVALID_BODY' }, 'events missing'),
    ),
  )

  const tooManyEvents = fc.tuple(streamArb, fc.integer({ min: MAX_BATCH_EVENTS + 1, max: MAX_BATCH_EVENTS + 40 })).map(([stream, count]) => {
    const event = stream === 'progress' ? { eventId: FRESH, courseId: 'course-1', lessonId: 'lesson-1', type: 'lesson_started', occurredAt: ago(60000) } : { eventId: FRESH, name: 'page.view', occurredAt: ago(60000) }
    return post(stream, JSON.stringify({ events: Array.from({ length: count }, () => event) }), { kind: 'refused', statuses: [400], code: 'TOO_MANY_EVENTS' }, 'too many events')
  })

  const wrongContentType = fc
    .tuple(
      streamArb,
      fc.constantFrom(
        'text/plain', 'text/html', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml',
        'application/octet-stream', 'image/png', 'application/jsonx', 'application/json-patch+json', 'text/json', 'json', '', undefined,
      ),
    )
    .chain(([stream, type]) =>
      batchOf(stream).map((events) => {
        const { 'content-type': _, ...headers } = json
        return post(stream, JSON.stringify({ events }), { kind: 'refused', statuses: [415], code: 'UNSUPPORTED_MEDIA_TYPE' }, 'wrong content type', type === undefined ? headers : { ...headers, 'content-type': type })
      }),
    )

  const oversized = fc.tuple(streamArb, fc.integer({ min: 1, max: 300000 })).map(([stream, over]) =>
    post(stream, JSON.stringify({ events: [], padding: 'x'.repeat(MAX_BATCH_BYTES + over) }), { kind: 'refused', statuses: [413], code: 'PAYLOAD_TOO_LARGE' }, 'oversized body'),
  )

  // Raw JSON text with prototype poisoning: JSON.parse makes it a plain own key;
  // in an event (or its properties) that event alone is rejected, and in the
  // envelope it is one more field the API does not read.
  const prototypeKeys = fc.tuple(streamArb, fc.constantFrom('__proto__', 'constructor'), fc.constantFrom('top', 'event', 'properties')).chain(([stream, key, where]) =>
    validEvent(stream).map((slot) => {
      const poison = key === '__proto__' ? `"__proto__":{"admin":true}` : `"constructor":{"prototype":{"admin":true}}`
      const event = JSON.stringify(slot.event)
      const text =
        where === 'top'
          ? `{${poison},"events":[${event}]}`
          : where === 'event'
            ? `{"events":[${event.replace(/^\{/, `{${poison},`)}]}`
            : `{"events":[${event.replace(/\}$/, `,"properties":{${poison}}}`)}]}` // last, so it is the one that counts
      const rejected = new Map<number, Rejection>(where === 'top' ? [] : [[0, 'invalid_event']])
      return post(stream, text, { kind: 'per-event', rejected, events: 1 }, 'prototype keys')
    }),
  )

  // Raw JSON text with a repeated key: the last one wins, as in JSON.parse.
  const duplicateKeys = fc.oneof(
    streamArb.chain((stream) =>
      validEvent(stream).map((slot) => post(stream, `{"events":[${JSON.stringify(slot.event)}],"events":{"a":1}}`, { kind: 'refused', statuses: [400] }, 'duplicate keys')),
    ),
    fc.tuple(validProgress, fc.constantFrom('"type":5', '"progress":-1', '"courseId":""', '"occurredAt":"soon"')).map(([event, repeat]) =>
      post('progress', `{"events":[${JSON.stringify(event).replace(/\}$/, `,${repeat}}`)}]}`, { kind: 'per-event', rejected: new Map([[0, 'invalid_event']]), events: 1 }, 'duplicate keys'),
    ),
    validProgress.map((event) =>
      post('progress', `{"events":[${JSON.stringify({ ...event, lessonId: 5 }).replace(/\}$/, `,"lessonId":"lesson-9"}`)}]}`, { kind: 'per-event', rejected: new Map(), events: 1 }, 'duplicate keys'),
    ),
  )

  // Up to 40,000 levels: still under MAX_BATCH_BYTES (6 bytes a level at most).
  const deepNesting = fc.tuple(streamArb, fc.integer({ min: 1, max: 40000 }), fc.boolean()).map(([stream, depth, arrays]) =>
    arrays
      ? post(stream, `{"events":[${'['.repeat(depth)}${']'.repeat(depth)}]}`, { kind: 'nothing-stored', events: 1 }, 'deep nesting')
      : post(stream, `{"events":${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`, { kind: 'refused', statuses: [400] }, 'deep nesting'),
  )

  const forgedToken = fc.tuple(streamArb, fc.oneof(fc.constantFrom(...tokens.forged), fc.string({ unit: 'grapheme-ascii', maxLength: 300 }).map((s) => `Bearer ${s}`))).chain(([stream, authorization]) =>
    batchOf(stream).map((events) => post(stream, JSON.stringify({ events }), { kind: 'refused', statuses: [401], code: 'UNAUTHORIZED' }, 'forged token', { 'content-type': 'application/json', authorization })),
  )

  // A learner's batch naming another learner anywhere fails whole; an empty
  // userId names nobody, so only that event is rejected.
  const otherLearner = fc
    .tuple(streamArb, fc.oneof(fc.constantFrom('bob', 'Alice', 'alice ', 'ALICE', 'alice\u0000', ''), awkwardUnicode.filter((s) => s !== 'alice'), hugeString), fc.nat())
    .chain(([stream, userId, at]) =>
      fc.array(validEvent(stream), { minLength: 1, maxLength: 5 }).map((slots) => {
        const events = slots.map((s) => s.event)
        const index = at % events.length
        events[index] = { ...events[index], userId }
        const expect: Expectation = userId === ''
          ? { kind: 'per-event', rejected: new Map([[index, 'invalid_event']]), events: events.length }
          : { kind: 'refused', statuses: [403], code: 'FOREIGN_USER' }
        return post(stream, JSON.stringify({ events }), expect, "another learner's userId")
      }),
    )

  const queueDepthHeader = fc
    .tuple(streamArb, fc.oneof(fc.nat({ max: 999999999 }).map(String), fc.constantFrom('-1', '1e3', '0x10', 'abc', '1.5', '1000000000', '99999999999999999999', 'NaN', '1,2')))
    .chain(([stream, depth]) =>
      batchOf(stream, 2).map((events) =>
        post(
          stream,
          JSON.stringify({ events }),
          /^(0|[1-9]\d{0,8})$/.test(depth) ? { kind: 'per-event', rejected: new Map(), events: events.length } : { kind: 'refused', statuses: [400], code: 'INVALID_HEADER' },
          'X-Client-Queue-Depth',
          { ...json, 'x-client-queue-depth': depth },
        ),
      ),
    )

  const wrongRoute = fc
    .tuple(fc.constantFrom<Case['method']>('GET', 'PUT', 'DELETE', 'PATCH', 'POST'), fc.oneof(fc.constantFrom(PATHS.progress.batch, PATHS.analytics.single), fc.webPath().map((p) => `/api${p}`)))
    .filter(([method, url]) => !(method === 'POST' && Object.values(PATHS).some((p) => p.batch === url || p.single === url)) && !/^\/api\/(health|v1)/.test(url))
    .map(([method, url]): Case => ({ category: 'wrong method or path', method, url, headers: json, payload: method === 'GET' ? undefined : '{}', expect: { kind: 'refused', statuses: [400, 401, 403, 404, 405] } }))

  const hostileReads = fc
    .tuple(fc.oneof(unstorable, hugeString, awkwardUnicode, fc.string({ unit: 'binary', maxLength: 40 })), fc.boolean())
    .map(([value, inPath]): Case => ({
      category: 'hostile read',
      method: 'GET',
      url: inPath ? `/api/v1/orgs/org-a/users/${percentEncode(value)}/progress` : `/api/v1/progress/me?courseId=${percentEncode(value)}`,
      headers: { authorization: `Bearer ${inPath ? tokens.service : tokens.alice}` },
      expect: { kind: 'safe' },
    }))

  return fc.oneof(
    { weight: 25, arbitrary: mixedBatch },
    { weight: 6, arbitrary: singleEvent },
    { weight: 6, arbitrary: awkwardButValid },
    { weight: 6, arbitrary: truncatedJson },
    { weight: 5, arbitrary: notJson },
    { weight: 6, arbitrary: wrongEnvelope },
    { weight: 2, arbitrary: tooManyEvents },
    { weight: 5, arbitrary: wrongContentType },
    { weight: 2, arbitrary: oversized },
    { weight: 5, arbitrary: prototypeKeys },
    { weight: 4, arbitrary: duplicateKeys },
    { weight: 4, arbitrary: deepNesting },
    { weight: 7, arbitrary: forgedToken },
    { weight: 6, arbitrary: otherLearner },
    { weight: 4, arbitrary: queueDepthHeader },
    { weight: 3, arbitrary: wrongRoute },
    { weight: 4, arbitrary: hostileReads },
  ).map(printable)
}

/** Counterexamples print as one short line, not a 300 KB body. */
function printable(c: Case): Case {
  const text = () => `${c.category}: ${c.method} ${c.url} ${JSON.stringify(c.headers).slice(0, 200)} body(${c.payload?.length ?? 0}) ${JSON.stringify(c.payload?.slice(0, 400) ?? '')}`
  return Object.defineProperty(c, fc.toStringMethod, { value: text, enumerable: false })
}

/** A compact JWS signed with HMAC-SHA256 over exactly the header and claims given. */
function hs256(header: Json, claims: Json, secret = TEST_SECRET): string {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const input = `${b64(header)}.${b64(claims)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

/** Authorization headers that must all be refused with 401. */
async function forgedAuthorizations(): Promise<string[]> {
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  const exp = now + 3600
  const real = await mintToken(TEST_SECRET, { userId: 'alice' })
  const [header, payload, signature] = real.split('.')
  const hs = { alg: 'HS256', typ: 'JWT' }
  const tokens = [
    `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice', exp })}.`,
    `${b64({ alg: 'none' })}.${b64({ sub: 'alice', role: 'service', org_id: 'org-a', exp })}.${signature}`,
    hs256(hs, { sub: 'alice', exp }, 'a-different-secret-that-is-long-enough!!'),
    hs256(hs, { sub: 'alice', exp: now - 60 }), // expired
    `${header}.${b64({ sub: 'bob', role: 'learner', exp })}.${signature}`, // claims swapped, signature kept
    `${header}.${b64({ sub: 'alice', role: 'service', org_id: 'org-a', exp })}.${signature}`, // role escalated
    `${b64({ alg: 'HS512', typ: 'JWT' })}.${payload}.${signature}`,
    `${b64({ alg: 'RS256', typ: 'JWT' })}.${payload}.${signature}`, // algorithm confusion
    hs256(hs, { role: 'learner', exp }), // no sub
    hs256(hs, { sub: 'x'.repeat(200), exp }),
    hs256(hs, { sub: 'alice', role: 'root', exp }),
    hs256(hs, { sub: 'alice', role: 'service', exp }), // service without org_id
    hs256(hs, { sub: 'alice', org_id: 42, exp }),
    hs256(hs, { sub: 42, exp }),
    hs256({ ...hs, crit: ['x-unknown'], 'x-unknown': 1 }, { sub: 'alice', exp }),
    hs256(hs, { sub: 'alice', nbf: now + 3600, exp: now + 7200 }), // not valid yet
    real.slice(0, -3),
    `${real}.extra`,
    real.replaceAll('.', ''),
    `${header}..${signature}`,
  ]
  return [
    ...tokens.map((token) => `Bearer ${token}`),
    `Basic ${Buffer.from('alice:password').toString('base64')}`,
    'Bearer',
    'Bearer ',
    `bearer${real}`,
    real,
  ]
}

t.test(`${RUNS} hostile requests: no 5xx, coded rejects, nothing rejected is written`, async (t) => {
  const h = await build(t, { MAX_BATCH_EVENTS, MAX_BATCH_BYTES })
  await seedOrg(h.sql, 'org-a', [{ courseId: 'course-1', lessonCount: 3 }], ['alice', 'bob'])
  const tokens: Tokens = {
    alice: await h.token('alice'),
    service: await h.token('svc', { role: 'service', orgId: 'org-a', ttl: '3h' }),
    forged: await forgedAuthorizations(),
  }
  const countRows = async () => {
    const [row] = await h.sql<{ progress: number; analytics: number; deferred: number; lessons: number }[]>`
      select (select count(*)::int from progress_events) as progress,
             (select count(*)::int from analytics_events) as analytics,
             (select count(*)::int from dead_letter_events) as deferred,
             (select count(*)::int from user_lesson_progress) as lessons`
    return row!
  }
  const before = await countRows()
  t.same(before, { progress: 0, analytics: 0, deferred: 0, lessons: 0 }, 'the database starts empty')

  const stored = { progress: 0, analytics: 0, deferred: 0 }
  const statuses = new Map<number, number>()
  const byCategory = new Map<string, number>()
  const latencies: number[] = []
  let eventsRejected = 0
  const catalogue = new Map(Object.entries(Errors).map(([code, E]) => [code, new E().statusCode]))
  const started = performance.now()

  await fc.assert(
    fc.asyncProperty(categories(tokens), async (c) => {
      const payload = c.payload?.includes(FRESH) ? c.payload.replaceAll(FRESH, () => randomUUID()) : c.payload
      const sentAt = performance.now()
      const res = await h.app.inject({ method: c.method, url: c.url, headers: c.headers, ...(payload === undefined ? {} : { payload }) })
      latencies.push(performance.now() - sentAt)
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
      byCategory.set(c.category, (byCategory.get(c.category) ?? 0) + 1)
      const where = `${c.category}: ${c.method} ${c.url} -> ${res.statusCode} ${res.body.slice(0, 300)}`
      if (res.statusCode >= 500) throw new Error(`5xx for bad input (${where})`)

      if (res.statusCode !== 200) {
        const body = parse(res.body) as { code?: string }
        if (!isCodedError(body, res.statusCode)) throw new Error(`error body is not { statusCode, code, error, message } (${where})`)
        // Router refusals too (malformed URLs, over-long path parameters): every code is the catalogue's.
        if (catalogue.get(body.code!) !== res.statusCode) throw new Error(`code ${body.code} is not the catalogue's code for ${res.statusCode} (${where})`)
      }

      const expect = c.expect
      if (expect.kind === 'safe') return
      if (expect.kind === 'refused') {
        if (!expect.statuses.includes(res.statusCode)) throw new Error(`expected ${expect.statuses.join('/')} (${where})`)
        if (expect.code && (parse(res.body) as { code?: string }).code !== expect.code) throw new Error(`expected code ${expect.code} (${where})`)
        return
      }
      if (expect.kind === 'nothing-stored' && res.statusCode >= 400) return
      if (res.statusCode !== 200) throw new Error(`expected 200 (${where})`)
      const body = parse(res.body) as { accepted: number; duplicates: number; deferred: number; rejected: { index: number; code: string }[] }
      const accounted = body.accepted + body.duplicates + body.deferred + body.rejected.length
      if (accounted !== expect.events) throw new Error(`${accounted} outcomes for ${expect.events} events (${where})`)
      const wanted = expect.kind === 'per-event' ? expect.rejected : new Map(Array.from({ length: expect.events }, (_, i) => [i, undefined]))
      const got = new Map(body.rejected.map((r) => [r.index, r.code]))
      for (const [index, code] of wanted) {
        if (!got.has(index)) throw new Error(`event ${index} should have been rejected (${where})`)
        if (code && got.get(index) !== code) throw new Error(`event ${index} should be ${code} (${where})`)
      }
      if (got.size !== wanted.size) throw new Error(`only events ${[...wanted.keys()].join(',')} should have been rejected (${where})`)
      if (body.duplicates !== 0) throw new Error(`fresh events reported as duplicates (${where})`)
      eventsRejected += body.rejected.length
      stored[c.stream!] += body.accepted
      stored.deferred += body.deferred
    }),
    { numRuns: RUNS, seed: SEED },
  )
  const seconds = (performance.now() - started) / 1000

  const after = await countRows()
  t.equal(after.progress, stored.progress, 'progress rows written = events the 200s reported accepted')
  t.equal(after.analytics, stored.analytics, 'analytics rows written = events the 200s reported accepted')
  t.equal(after.deferred, stored.deferred, 'dead-letter rows = events the 200s reported deferred')
  t.ok(stored.progress > 0 && stored.analytics > 0, 'the valid events among the hostile ones were stored')
  t.equal([...statuses.keys()].filter((status) => status >= 500).length, 0, 'no 5xx')
  t.ok(eventsRejected > RUNS / 4, 'many individual events were rejected by index')

  reportFigures(t, 'hostile-input', {
    requests: RUNS,
    seed: SEED,
    seconds: round(seconds),
    statuses: Object.fromEntries([...statuses].sort(([a], [b]) => a - b)),
    categories: Object.fromEntries(byCategory),
    eventsRejectedByIndex: eventsRejected,
    rowsWritten: { progress: after.progress, analytics: after.analytics, deadLetter: after.deferred },
    injectP95Ms: round(percentile(latencies, 95)),
  })
})
