// What an HTTP answer to a batch means for the events in it. Pure.
// An event leaves storage only on 'ack' (accepted, duplicate, deferred, or
// rejected for good) or on 'drop': our API's own answer blames that event
// alone. Every other refusal keeps the events: an answer we cannot tie to an
// event (a proxy's or WAF's page, a bad deploy, a gateway's 403) may be gone
// in a minute, and dropping on it would lose events the server never judged.

export interface RejectedEvent {
  index: number
  eventId?: string
  code: string
  message: string
}

export type Verdict =
  /** Every event is accounted for; the rejected ones are dropped for good. */
  | { action: 'ack'; rejected: RejectedEvent[] }
  /** A smaller chunk can pass (too many events, too large) or isolate the event at fault; nothing is dropped. */
  | { action: 'split' }
  /** The request held one event and the API refused it for that event: it can never be sent. */
  | { action: 'drop'; code: string; message: string }
  /** 429, 503: the server asks to wait (Retry-After). */
  | { action: 'throttled' }
  /** Anything else: keep the events and back off. */
  | { action: 'failed' }

const isCount = (value: unknown): value is number => Number.isInteger(value) && (value as number) >= 0

function readSummary(body: unknown, size: number): RejectedEvent[] | undefined {
  if (body === null || typeof body !== 'object') return undefined
  const { accepted, duplicates, deferred, rejected } = body as Record<string, unknown>
  if (!isCount(accepted) || !isCount(duplicates) || !isCount(deferred) || !Array.isArray(rejected)) return undefined
  const seen = new Set<number>()
  for (const entry of rejected as { index?: unknown }[]) {
    if (!entry || !isCount(entry.index) || entry.index >= size || seen.has(entry.index)) return undefined
    seen.add(entry.index)
  }
  // A 200 that does not account for every event (a proxy's page, a different
  // server) must not delete anything.
  return accepted + duplicates + deferred + seen.size === size ? (rejected as RejectedEvent[]) : undefined
}

/**
 * Only two whole-request refusals of the API can be one event's fault
 * (docs/errors.md); its other 400s are about the body the SDK builds:
 * - 403 FOREIGN_USER: an event names another user. A gateway's 403, or the
 *   API's FORBIDDEN, is about the token or the route: retried like a 401.
 * - 413 PAYLOAD_TOO_LARGE for a lone event: that event is over MAX_BATCH_BYTES.
 * Chunks are halved, not dropped, to find that event, and on a 413 from anyone
 * or a 400 TOO_MANY_EVENTS (a server with smaller limits than the client).
 */
export function classify(status: number, body: unknown, size: number): Verdict {
  if (status === 200) {
    const rejected = readSummary(body, size)
    return rejected ? { action: 'ack', rejected } : { action: 'failed' }
  }
  if (status === 429 || status === 503) return { action: 'throttled' }
  const { code, message } = (body ?? {}) as { code?: unknown; message?: unknown }
  const foreignUser = status === 403 && code === 'FOREIGN_USER'
  if (size === 1) {
    return foreignUser || (status === 413 && code === 'PAYLOAD_TOO_LARGE')
      ? { action: 'drop', code: code as string, message: String(message) }
      : { action: 'failed' }
  }
  return foreignUser || status === 413 || (status === 400 && code === 'TOO_MANY_EVENTS') ? { action: 'split' } : { action: 'failed' }
}
