// When to send next. Pure: every function takes the time (and randomness) it
// needs, so the pacing rules run in Node tests exactly as in the browser.
//
// - Flush interval: between minIntervalMs and maxIntervalMs, growing with an
//   EWMA of observed request latency (a slow server gets fewer, fuller batches).
// - Server lag (X-Client-Queue-Lag): extra delay added before every next flush,
//   including size-triggered ones (contract section 4).
// - Gates: Retry-After on 429/503 and exponential backoff with jitter after
//   failures set notBefore; nothing is sent before it.

export interface Pacing {
  /** Epoch ms before which no request may be sent. */
  notBefore: number
  /** Consecutive failed attempts, for backoff. */
  attempt: number
  /** Epoch ms of the last HTTP answer (0: none yet). */
  lastResponseAt: number
  /** The server's last X-Client-Queue-Lag. */
  lagMs: number
  /** Smoothed request latency. */
  ewmaMs: number
  lastLatencyMs: number | null
}

export interface PacingOptions {
  minIntervalMs: number
  maxIntervalMs: number
  baseBackoffMs: number
  maxBackoffMs: number
}

export const defaultPacingOptions: PacingOptions = {
  minIntervalMs: 1000,
  maxIntervalMs: 8000,
  baseBackoffMs: 1000,
  maxBackoffMs: 30000,
}

export const idlePacing: Pacing = { notBefore: 0, attempt: 0, lastResponseAt: 0, lagMs: 0, ewmaMs: 0, lastLatencyMs: null }

/** Weight of each new latency sample. */
export const EWMA_ALPHA = 0.3
/** Interval milliseconds added per millisecond of smoothed latency. */
export const LATENCY_WEIGHT = 4
/** Retry-After: 0 would let a struggling server be hammered; wait at least this. */
export const MIN_RETRY_AFTER_MS = 1000
/**
 * Retry-After: and at most this. The API asks for 1-2 s and caps its lag
 * advice at 30 s; an hour or a day comes from something else (a CDN's
 * maintenance page, a misconfigured proxy) and would hold every queue, in
 * every tab and across reloads, that long. One request a minute is cheap.
 */
export const MAX_RETRY_AFTER_MS = 60000
/** The contract caps X-Client-Queue-Lag at 30 s; never trust more than that. */
export const MAX_LAG_MS = 30000

/** Starts from 0 rather than the first sample: a cold first request (new connection, JIT) must not set the pace. */
export const smooth = (previous: number, sample: number): number => EWMA_ALPHA * sample + (1 - EWMA_ALPHA) * previous

export function flushInterval(ewmaMs: number, options: PacingOptions): number {
  return Math.min(options.maxIntervalMs, Math.max(options.minIntervalMs, options.minIntervalMs + LATENCY_WEIGHT * ewmaMs))
}

/** The earliest time anything may be sent: Retry-After/backoff and the server's lag. */
export const gateOf = (pacing: Pacing): number => Math.max(pacing.notBefore, pacing.lastResponseAt + pacing.lagMs)

/** When a queue should flush: at the gate when it holds a full batch, else one interval later. */
export function nextFlushAt(pacing: Pacing, full: boolean, options: PacingOptions): number {
  const gate = gateOf(pacing)
  return full ? gate : Math.max(gate, pacing.lastResponseAt + pacing.lagMs + flushInterval(pacing.ewmaMs, options))
}

/** "Equal jitter": half the exponential delay fixed, half random, so tabs and devices spread out. */
export function backoffDelay(attempt: number, random: number, options: PacingOptions): number {
  const ceiling = Math.min(options.maxBackoffMs, options.baseBackoffMs * 2 ** Math.max(0, attempt - 1))
  return Math.round(ceiling / 2 + (random * ceiling) / 2)
}

/** Retry-After as milliseconds to wait, 1-60 s: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  const trimmed = (value ?? '').trim()
  // An HTTP date has a weekday and month name; Date.parse alone would read "-3" as a year.
  const ms = /^\d+$/.test(trimmed) ? Number(trimmed) * 1000 : /[a-z]/i.test(trimmed) ? Date.parse(trimmed) - now : Number.NaN
  return Number.isNaN(ms) ? undefined : Math.min(MAX_RETRY_AFTER_MS, Math.max(MIN_RETRY_AFTER_MS, ms))
}

/** X-Client-Queue-Lag as milliseconds, bounded; 0 when absent or unreadable. */
export function parseLag(value: string | null | undefined): number {
  const lag = Number(value)
  return value != null && value !== '' && Number.isFinite(lag) && lag > 0 ? Math.min(MAX_LAG_MS, Math.round(lag)) : 0
}

export type Observation =
  /**
   * The server answered the batch: 200, or a lone event refused for good.
   * halved: it refused the chunk in a way a smaller one may pass or isolate.
   */
  | { kind: 'answered'; latencyMs: number; lagMs: number; halved?: boolean }
  /** 429 or 503: wait for Retry-After (backoff when it is missing). */
  | { kind: 'throttled'; latencyMs: number; lagMs: number; retryAfterMs: number | undefined }
  /** Network error, repeated 401, unexpected status or answer: back off. */
  | { kind: 'failed'; latencyMs?: number; lagMs?: number }

/**
 * The pacing on the device's clock as it reads now. The times are stored
 * absolute, so a clock set back (by hand, or corrected by NTP) would leave
 * them in the future and hold every queue, in every tab and later page load,
 * for as long as the clock moved; an answer cannot have come after now, so
 * what lies ahead of it is moved back by as much.
 */
export function onClockNow(pacing: Pacing, now: number): Pacing {
  const ahead = pacing.lastResponseAt - now
  return ahead > 0 ? { ...pacing, lastResponseAt: now, notBefore: pacing.notBefore - ahead } : pacing
}

/** The pacing after one request. notBefore never moves back: another queue or tab may have set it. */
export function afterRequest(stored: Pacing, observation: Observation, now: number, random: number, options: PacingOptions): Pacing {
  const pacing = onClockNow(stored, now)
  const next: Pacing = { ...pacing }
  if (observation.latencyMs !== undefined) {
    next.ewmaMs = smooth(pacing.ewmaMs, observation.latencyMs)
    next.lastLatencyMs = observation.latencyMs
    next.lastResponseAt = now
    next.lagMs = observation.lagMs ?? 0
  }
  if (observation.kind === 'answered') {
    next.attempt = 0
    // The next half waits a flush interval: isolating an event among a
    // hundred takes seven requests, which must not come as one burst.
    if (observation.halved) next.notBefore = Math.max(pacing.notBefore, now + flushInterval(next.ewmaMs, options))
    return next
  }
  next.attempt = pacing.attempt + 1
  const wait =
    observation.kind === 'throttled' && observation.retryAfterMs !== undefined
      ? observation.retryAfterMs
      : backoffDelay(next.attempt, random, options)
  next.notBefore = Math.max(pacing.notBefore, now + wait)
  return next
}
