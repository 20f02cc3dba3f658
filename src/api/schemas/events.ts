// Event shapes (contract section 4), defined once: route schemas, OpenAPI and
// the per-event validator are all derived from these.
import { Type, type Static } from 'typebox'

export const Id = Type.String({ minLength: 1, maxLength: 128 })
const DAY = '\\d{4}-\\d{2}-\\d{2}'
// RFC 3339's own grammar: a T between date and time (its note's space is left
// out, as the per-event validator's date-time format leaves it out).
const TIME = '[Tt]\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?([Zz]|[+-]\\d{2}:\\d{2})'
const DATE_TIME_PATTERN = `^${DAY}${TIME}$`
const DAY_OR_DATE_TIME_PATTERN = `^${DAY}(${TIME})?$`
// RFC 3339 with an explicit offset; stricter than format alone, which also
// admits RFC 9557 suffixes that PostgreSQL cannot parse.
export const DateTime = Type.String({ format: 'date-time', pattern: DATE_TIME_PATTERN, maxLength: 40 })
/** A query bound: a day (YYYY-MM-DD, its UTC midnight) or a date-time; parse it with `parseDayOrDateTime`. */
export const DayOrDateTime = Type.String({ pattern: DAY_OR_DATE_TIME_PATTERN, maxLength: 40 })

const WEEKS_PATTERN = '^([1-9]|[1-4][0-9]|5[0-2])$'
/** A number of weeks in a query, in plain digits: an integer schema would let ajv coerce 0x10, 1e1 or ' 12'. */
export const Weeks = Type.String({ pattern: WEEKS_PATTERN, description: 'whole weeks, 1 to 52' })

/** The query of a read route that takes none: an unknown parameter is 400 INVALID_QUERY, as on the others. */
export const NoQuery = Type.Object({}, { additionalProperties: false })

/** The patterns above in words, for error messages (ajv would quote the regular expression). */
export const PATTERN_WORDS: ReadonlyMap<string, string> = new Map([
  [DATE_TIME_PATTERN, 'an RFC 3339 date-time with a time zone, such as 2026-12-02T09:30:00Z'],
  [DAY_OR_DATE_TIME_PATTERN, 'a day (YYYY-MM-DD, UTC) or an RFC 3339 date-time with a time zone, such as 2026-12-02T09:30:00Z'],
  [WEEKS_PATTERN, 'a whole number of weeks from 1 to 52'],
])

/** The instants PostgreSQL reads back from a Date's ISO text: UTC years 1 to 9999. */
export const EARLIEST_INSTANT_MS = new Date('0001-01-01T00:00:00Z').getTime()
export const LATEST_INSTANT_MS = new Date('9999-12-31T23:59:59.999Z').getTime()

/**
 * The instant a `DayOrDateTime` names, or undefined when its calendar day does
 * not exist (2026-02-30, which Date would roll over to March), its time is out
 * of range, or it falls outside UTC years 1 to 9999 (year 0000, or 9999-12-31
 * with a negative offset, which PostgreSQL would refuse).
 */
export function parseDayOrDateTime(text: string): Date | undefined {
  const [year, month, day] = text.slice(0, 10).split('-').map(Number) as [number, number, number]
  const written = new Date(Date.UTC(year, month - 1, day))
  if (written.getUTCMonth() !== month - 1 || written.getUTCDate() !== day) return undefined
  const instant = new Date(text.length === 10 ? `${text}T00:00:00Z` : text)
  const ms = instant.getTime()
  return ms >= EARLIEST_INSTANT_MS && ms <= LATEST_INSTANT_MS ? instant : undefined
}
const Uuid = Type.String({ format: 'uuid', maxLength: 36 })

export const ProgressEvent = Type.Object(
  {
    eventId: Uuid,
    userId: Type.Optional(Id),
    courseId: Id,
    lessonId: Id,
    type: Type.Union([Type.Literal('lesson_started'), Type.Literal('lesson_progress'), Type.Literal('lesson_completed')]),
    progress: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    timeSpentMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400000 })),
    score: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    occurredAt: DateTime,
  },
  { additionalProperties: false, $id: 'ProgressEvent' },
)
export type ProgressEvent = Static<typeof ProgressEvent>

export const AnalyticsEvent = Type.Object(
  {
    eventId: Uuid,
    userId: Type.Optional(Id),
    name: Type.String({ pattern: '^[a-z0-9_.:-]{1,64}$' }),
    occurredAt: DateTime,
    courseId: Type.Optional(Id),
    lessonId: Type.Optional(Id),
    sessionId: Type.Optional(Id),
    properties: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'at most 8 KB serialized, depth 4' })),
  },
  { additionalProperties: false, $id: 'AnalyticsEvent' },
)
export type AnalyticsEvent = Static<typeof AnalyticsEvent>

/**
 * Batch bodies check only the envelope; each event is validated on its own so
 * that one bad event is rejected by index and never fails the others.
 */
export function batchBody(maxEvents: number, eventName: string) {
  return Type.Object({
    events: Type.Array(Type.Unknown({ description: `a ${eventName}, validated per event` }), { maxItems: maxEvents }),
    sentAt: Type.Optional(DateTime),
  })
}
export type BatchBody = { events: unknown[]; sentAt?: string }

export const SingleEventBody = Type.Object({}, { description: 'one event, validated as a batch of one' })

export const RejectedEvent = Type.Object({
  index: Type.Integer(),
  eventId: Type.Optional(Type.String()),
  code: Type.Union([Type.Literal('invalid_event'), Type.Literal('too_old'), Type.Literal('in_future')]),
  message: Type.String(),
})
export type RejectedEvent = Static<typeof RejectedEvent>

export const IngestResponse = Type.Object({
  accepted: Type.Integer(),
  duplicates: Type.Integer(),
  deferred: Type.Integer(),
  rejected: Type.Array(RejectedEvent),
})
export type IngestResponse = Static<typeof IngestResponse>

export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String(),
})
