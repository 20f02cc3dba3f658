// Turns a request's events into rows for the write procedures: each event is
// checked on its own (schema, time window, properties), so a bad one is
// rejected by index while the rest go on. A userId the caller may not write for
// fails the whole batch (contract section 3).
import { Compile } from 'typebox/compile'
import { Errors, RejectionCodes, type RejectionCode } from '../errors.ts'
import type { Principal } from '../auth/principal.ts'
import { AnalyticsEvent, ProgressEvent, type RejectedEvent } from '../api/schemas/events.ts'

export type Stream = 'progress' | 'analytics'

export interface TimeWindow {
  retentionDays: number
  maxFutureMs: number
}

interface BaseRow {
  i: number
  event_id: string
  occurred_at: string
  user_id: string
  org_hint: string | null
  clock_skew_ms: number | null
}

export interface ProgressRow extends BaseRow {
  course_id: string
  lesson_id: string
  type: ProgressEvent['type']
  progress: number | null
  time_spent_ms: number | null
  score: number | null
}

export interface AnalyticsRow extends BaseRow {
  name: string
  course_id: string | null
  lesson_id: string | null
  session_id: string | null
  properties: Record<string, unknown> | null
}

export interface Prepared<Row> {
  rows: Row[]
  rejected: RejectedEvent[]
}

const checkProgress = Compile(ProgressEvent)
const checkAnalytics = Compile(AnalyticsEvent)

const MAX_PROPERTIES_BYTES = 8192
const MAX_PROPERTIES_DEPTH = 4
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype'])
const DAY_MS = 86400000
const INT32_MAX = 2147483647

/** Why properties are unacceptable, or undefined when they are fine. */
function propertiesProblem(value: unknown, depth = 1): string | undefined {
  if (value === null || typeof value !== 'object') return undefined
  if (depth > MAX_PROPERTIES_DEPTH) return `properties nest deeper than ${MAX_PROPERTIES_DEPTH}`
  for (const key of Object.keys(value)) {
    if (FORBIDDEN_KEYS.has(key)) return `properties may not use the key "${key}"`
    const problem = propertiesProblem((value as Record<string, unknown>)[key], depth + 1)
    if (problem) return problem
  }
  return undefined
}

/**
 * Why a string in the event (a key or a value, at any depth) cannot be stored,
 * or undefined. PostgreSQL text and json cannot hold NUL, and an unpaired
 * UTF-16 surrogate is not valid JSON text for it: either would fail the whole
 * procedure call (a 500) instead of this one event. Runs after the schema and
 * properties checks, so the nesting is already bounded.
 */
function unstorableText(value: unknown): string | undefined {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return 'strings may not contain NUL characters'
    if (!value.isWellFormed()) return 'strings may not contain unpaired UTF-16 surrogates'
    return undefined
  }
  if (value === null || typeof value !== 'object') return undefined
  for (const [key, item] of Object.entries(value)) {
    const problem = unstorableText(key) ?? unstorableText(item)
    if (problem) return problem
  }
  return undefined
}

function firstSchemaError(validator: typeof checkProgress | typeof checkAnalytics, event: unknown): string {
  const [error] = validator.Errors(event)
  if (!error) return RejectionCodes.invalid_event
  // TypeBox reports a property that additionalProperties: false refuses as "schema is false".
  if (error.schemaPath.endsWith('/additionalProperties')) return `${error.instancePath} is not a field of this event`
  return `${error.instancePath || 'event'} ${error.message}`
}

/**
 * The userId the event is written for: the one it names, else the token's own,
 * except that a service must name one (undefined: the event is rejected alone);
 * a 403 when the caller may not write for the one named.
 */
function ownerOf(event: unknown, principal: Principal): string | undefined {
  const named = (event as { userId?: unknown } | null)?.userId
  // Not an id (absent, empty, not a string): the event's schema check rejects a bad one alone.
  if (typeof named !== 'string' || named === '') return principal.role === 'service' ? undefined : principal.userId
  if (named !== principal.userId && principal.role !== 'service') {
    throw new Errors.FOREIGN_USER(`${principal.role} tokens may only send events for their own user`)
  }
  return named
}

/**
 * Server time minus the client's sentAt; null without sentAt. A sentAt the
 * schema admits but no clock can read (a leap second, :60) fails the request,
 * as the same occurredAt fails its event.
 */
function clockSkew(sentAt: string | undefined, receivedAt: number): number | null {
  if (sentAt === undefined) return null
  const sent = Date.parse(sentAt)
  if (Number.isNaN(sent)) throw new Errors.INVALID_BODY('sentAt is not a valid date-time')
  return Math.max(-INT32_MAX, Math.min(INT32_MAX, receivedAt - sent))
}

/**
 * occurredAt as PostgreSQL is to read it: the same instant, in UTC. RFC 3339
 * allows offsets up to ±23:59 and PostgreSQL only up to ±15:59 (past that the
 * whole call fails), so an offset is applied here; digits past the millisecond
 * are kept, and PostgreSQL rounds them to its microsecond as before.
 */
function inUtc(occurredAt: string, time: number): string {
  const last = occurredAt[occurredAt.length - 1]
  if (last === 'Z' || last === 'z') return occurredAt
  const iso = new Date(time).toISOString() // Date.parse truncates to the millisecond
  const subMillisecond = /\.\d{3}(\d+)/.exec(occurredAt)?.[1]
  return subMillisecond ? `${iso.slice(0, -1)}${subMillisecond}Z` : iso
}

function prepare<Event extends { eventId: string; occurredAt: string; userId?: string }, Row>(
  events: unknown[],
  validator: typeof checkProgress | typeof checkAnalytics,
  extraCheck: (event: Event) => string | undefined,
  toRow: (event: Event, base: BaseRow) => Row,
  principal: Principal,
  window: TimeWindow,
  sentAt: string | undefined,
  now: number,
): Prepared<Row> {
  const rows: Row[] = []
  const rejected: RejectedEvent[] = []
  const skew = clockSkew(sentAt, now)
  const oldest = now - window.retentionDays * DAY_MS
  const newest = now + window.maxFutureMs
  const reject = (index: number, event: unknown, code: RejectionCode, message: string) => {
    const eventId = (event as { eventId?: unknown } | null)?.eventId
    rejected.push({ index, ...(typeof eventId === 'string' ? { eventId: eventId.slice(0, 64) } : {}), code, message })
  }
  // Ownership first, over every event: one foreign userId fails the whole batch.
  const owners = events.map((event) => ownerOf(event, principal))
  events.forEach((event, index) => {
    if (!validator.Check(event)) return reject(index, event, 'invalid_event', firstSchemaError(validator, event))
    const typed = event as Event
    const owner = owners[index]
    if (owner === undefined) return reject(index, event, 'invalid_event', 'userId is required with a service token')
    const problem = extraCheck(typed) ?? unstorableText(typed)
    if (problem) return reject(index, event, 'invalid_event', problem)
    const time = Date.parse(typed.occurredAt)
    if (!Number.isFinite(time)) return reject(index, event, 'invalid_event', 'occurredAt is not a valid date-time')
    if (time < oldest) return reject(index, event, 'too_old', `${RejectionCodes.too_old} (${window.retentionDays} days)`)
    if (time > newest) return reject(index, event, 'in_future', `${RejectionCodes.in_future} (${window.maxFutureMs} ms)`)
    rows.push(
      toRow(typed, {
        i: index,
        event_id: typed.eventId.toLowerCase(),
        occurred_at: inUtc(typed.occurredAt, time),
        user_id: owner,
        org_hint: principal.orgId ?? null,
        clock_skew_ms: skew,
      }),
    )
  })
  return { rows, rejected }
}

export function prepareProgress(
  events: unknown[],
  principal: Principal,
  window: TimeWindow,
  sentAt: string | undefined,
  now = Date.now(),
): Prepared<ProgressRow> {
  return prepare<ProgressEvent, ProgressRow>(
    events,
    checkProgress,
    (event) => (event.type === 'lesson_progress' && event.progress === undefined ? 'progress is required for lesson_progress' : undefined),
    (event, base) => ({
      ...base,
      course_id: event.courseId,
      lesson_id: event.lessonId,
      type: event.type,
      // floor: 99.6 % must not read as a completed lesson
      progress: event.progress === undefined ? null : Math.floor(event.progress),
      time_spent_ms: event.timeSpentMs ?? null,
      score: event.score ?? null,
    }),
    principal,
    window,
    sentAt,
    now,
  )
}

export function prepareAnalytics(
  events: unknown[],
  principal: Principal,
  window: TimeWindow,
  sentAt: string | undefined,
  now = Date.now(),
): Prepared<AnalyticsRow> {
  return prepare<AnalyticsEvent, AnalyticsRow>(
    events,
    checkAnalytics,
    (event) => {
      if (event.properties === undefined) return undefined
      const problem = propertiesProblem(event.properties)
      if (problem) return problem
      if (Buffer.byteLength(JSON.stringify(event.properties)) > MAX_PROPERTIES_BYTES) {
        return `properties exceed ${MAX_PROPERTIES_BYTES} bytes serialized`
      }
      return undefined
    },
    (event, base) => ({
      ...base,
      name: event.name,
      course_id: event.courseId ?? null,
      lesson_id: event.lessonId ?? null,
      session_id: event.sessionId ?? null,
      properties: event.properties ?? null,
    }),
    principal,
    window,
    sentAt,
    now,
  )
}
