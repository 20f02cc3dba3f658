// What an HTTP answer to a batch means for the events in it. Pure.
// An event leaves storage only on 'ack' (accepted, duplicate, deferred, or
// rejected for good) or when it alone was refused as a whole request.

export interface RejectedEvent {
  index: number
  eventId?: string
  code: string
  message: string
}

export type Verdict =
  /** Every event is accounted for; the rejected ones are dropped for good. */
  | { action: 'ack'; rejected: RejectedEvent[] }
  /** 400, 403, 413: something in the chunk is unacceptable; halve it to find the event. */
  | { action: 'split'; code: string; message: string }
  /** 429, 503: the server asks to wait (Retry-After). */
  | { action: 'throttled' }
  /** Anything else: keep the events and back off. */
  | { action: 'failed' }

/** Statuses a smaller chunk can fix (400 too many events, 413 too large) or isolate (400/403 one bad event). */
const SPLIT_STATUSES = new Set([400, 403, 413])

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

export function classify(status: number, body: unknown, size: number): Verdict {
  if (status === 200) {
    const rejected = readSummary(body, size)
    return rejected ? { action: 'ack', rejected } : { action: 'failed' }
  }
  if (SPLIT_STATUSES.has(status)) {
    const { code, message } = (body ?? {}) as { code?: unknown; message?: unknown }
    return { action: 'split', code: typeof code === 'string' ? code : `HTTP_${status}`, message: typeof message === 'string' ? message : '' }
  }
  if (status === 429 || status === 503) return { action: 'throttled' }
  return { action: 'failed' }
}
