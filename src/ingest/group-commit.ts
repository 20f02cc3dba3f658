// Group commit: requests that arrive while the database is busy with earlier
// ones are coalesced into one procedure call, so a burst pays one round trip,
// one plan execution and one commit (one WAL flush) instead of one per request.
//
// A request is sent at once when fewer than `maxInFlight` calls of its stream
// are running; otherwise it waits for the next free slot and leaves with
// everything that queued up behind the same slot. An idle service adds no
// latency. A busy one (the call that just ended carried company) lingers up to
// `lingerMs` before its next call while fewer than `lingerUntil` requests
// wait, so that calls carry more requests when the database's per-call cost
// matters most (like PostgreSQL's commit_delay with commit_siblings).
//
// Each request still gets exactly its own outcomes: rows are renumbered (`i`)
// across the coalesced requests, the procedure returns one letter per `i` in
// order, and the string is cut back into each request's slice. The procedure
// gives the lowest `i` of a repeated event `a` and the others `d`, so an event
// sent by two coalesced requests counts once, for the earlier request.
//
// One bad request must not fail the others: when the database refuses a
// coalesced call, each of its requests is retried alone, and only the one that
// fails alone sees an error. A request alone in its call is never retried: it
// keeps its own error; so does every request of a call that lost its connection.
import postgres from 'postgres'
import type { Sql } from '../db/pool.ts'
import type { AnalyticsRow, ProgressRow, Stream } from './validate.ts'
import { directWriter, type BatchWriter, type Outcomes } from './writer.ts'

type Row = ProgressRow | AnalyticsRow

export interface GroupCommitOptions {
  /** Procedure calls per stream running at once; more requests wait and coalesce. */
  maxInFlight?: number
  /** Rows above which a call takes no further request (one request is never split). */
  maxRows?: number
  /** After a call that carried two or more requests, how long the next may wait for more (0: never). */
  lingerMs?: number
  /** Waiting requests at which a lingering call goes at once. */
  lingerUntil?: number
  /** Called once per procedure call with how many requests it carried (metrics, tests). */
  onCall?: (stream: Stream, requests: number, rows: number) => void
}

// 1 in flight: everything that arrives during a call goes in the next one.
// At 1,000 batches/s that was 15 % less PostgreSQL CPU and 8 % less CPU in all
// per batch than with 2, at the same latency (docs/performance.md). The price:
// a call held up by a row lock (an erasure, a replay) holds up its stream for
// as long, with the shedding bound (503 + Retry-After) behind it.
// Lingering 1 ms (a busy stream only) took calls from 2-4 to 6-7 requests at
// 1,400 batches/s and the CPU per batch a tenth lower; at 500/s calls carry
// one request, so it hardly ever lingers (docs/performance.md, "Group commit").
export const GROUP_COMMIT_DEFAULTS = { maxInFlight: 1, maxRows: 1000, lingerMs: 1, lingerUntil: 6 } as const

interface Pending {
  rows: Row[]
  resolve(outcomes: Outcomes): void
  reject(error: unknown): void
}

interface Lane {
  queue: Pending[]
  inFlight: number
  /** Set while the next call lingers for company. */
  linger?: NodeJS.Timeout
}

export function groupCommitWriter(sql: Sql, options: GroupCommitOptions = {}): BatchWriter {
  const maxInFlight = options.maxInFlight ?? GROUP_COMMIT_DEFAULTS.maxInFlight
  const maxRows = options.maxRows ?? GROUP_COMMIT_DEFAULTS.maxRows
  const lingerMs = options.lingerMs ?? GROUP_COMMIT_DEFAULTS.lingerMs
  const lingerUntil = options.lingerUntil ?? GROUP_COMMIT_DEFAULTS.lingerUntil
  const direct = directWriter(sql)
  const lanes: Record<Stream, Lane> = {
    progress: { queue: [], inFlight: 0 },
    analytics: { queue: [], inFlight: 0 },
  }

  const call = (stream: Stream, rows: Row[]): Promise<Outcomes> => {
    options.onCall?.(stream, 1, rows.length)
    return direct.write(stream, rows as ProgressRow[] & AnalyticsRow[])
  }

  /** Takes queued requests up to maxRows (at least one). */
  function take(lane: Lane): Pending[] {
    const group: Pending[] = []
    let rows = 0
    while (lane.queue.length > 0) {
      const next = lane.queue[0]!
      if (group.length > 0 && rows + next.rows.length > maxRows) break
      lane.queue.shift()
      group.push(next)
      rows += next.rows.length
    }
    return group
  }

  async function writeGroup(stream: Stream, group: Pending[]): Promise<void> {
    if (group.length === 1) {
      const [only] = group
      await call(stream, only!.rows).then(only!.resolve, only!.reject)
      return
    }
    // Renumber: request k's rows take the i's [offset_k, offset_k + rows_k).
    const combined: Row[] = []
    const offsets: number[] = []
    for (const pending of group) {
      offsets.push(combined.length)
      for (const row of pending.rows) combined.push({ ...row, i: combined.length })
    }
    let outcomes: Outcomes | undefined
    try {
      options.onCall?.(stream, group.length, combined.length)
      outcomes = await direct.write(stream, combined as ProgressRow[] & AnalyticsRow[])
    } catch (error) {
      // A lost connection is no request's fault: every request gets the error
      // it would have had alone, at once, rather than after one more attempt each.
      if (!(error instanceof postgres.PostgresError)) {
        for (const pending of group) pending.reject(error)
        return
      }
    }
    if (outcomes === undefined || outcomes.length !== combined.length) {
      // The database refused the statement (or answered for other rows): one
      // request's rows may be the cause, so isolate it by retrying each request
      // alone, in arrival order so that duplicates still favour the earlier.
      for (const pending of group) await call(stream, pending.rows).then(pending.resolve, pending.reject)
      return
    }
    group.forEach((pending, k) => pending.resolve(outcomes.slice(offsets[k], offsets[k]! + pending.rows.length)))
  }

  /** `carried`: how many requests the call that just ended carried (0: a new request, or the linger's end). */
  function pump(stream: Stream, carried = 0): void {
    const lane = lanes[stream]
    if (lane.linger) {
      if (lane.queue.length < lingerUntil) return // still waiting for company
      clearTimeout(lane.linger)
      lane.linger = undefined
    } else if (carried > 1 && lingerMs > 0 && lane.queue.length > 0 && lane.queue.length < lingerUntil) {
      lane.linger = setTimeout(() => {
        lane.linger = undefined
        pump(stream)
      }, lingerMs)
      return
    }
    while (lane.inFlight < maxInFlight && lane.queue.length > 0) {
      const group = take(lane)
      lane.inFlight++
      void writeGroup(stream, group).finally(() => {
        lane.inFlight--
        pump(stream, group.length)
      })
    }
  }

  return {
    write(stream: Stream, rows: Row[], signal?: AbortSignal): Promise<Outcomes> {
      return new Promise<Outcomes>((resolve, reject) => {
        const pending: Pending = { rows, resolve, reject }
        const lane = lanes[stream]
        lane.queue.push(pending)
        // Given up while still queued: taken out, so it is never written.
        signal?.addEventListener('abort', () => {
          const at = lane.queue.indexOf(pending)
          if (at < 0) return
          lane.queue.splice(at, 1)
          reject(signal.reason)
        }, { once: true })
        pump(stream)
      })
    },
  } as BatchWriter
}
