// WAL flushes between two points: how many commits had to wait for the disk,
// and how long each wait took. Every durable answer waits for one, so under
// load their count per batch (which group commit lowers) and their mean time
// (which the disk sets) explain most of the latency the bench reports.
//
// PostgreSQL 18 counts them in pg_stat_io (object 'wal'), 14 to 17 in
// pg_stat_wal; times need track_wal_io_timing, which only a superuser can turn
// on (the bench does, on its own embedded server). Without it, counts only.
import type { Sql } from '../src/db/pool.ts'

export interface WalFlushReading {
  flushes: number
  /** Milliseconds spent flushing; undefined when the server does not time them. */
  ms?: number
}

export interface WalFlushDelta {
  flushes: number
  meanMs?: number
}

/** Turns flush timing on for the whole server; false when not allowed (not a superuser). */
export async function enableWalTiming(sql: Sql): Promise<boolean> {
  try {
    await sql`alter system set track_wal_io_timing = on`
    await sql`select pg_reload_conf()`
    return true
  } catch {
    return false
  }
}

export async function readWalFlushes(sql: Sql): Promise<WalFlushReading | undefined> {
  const [setting] = await sql<{ timed: boolean }[]>`select current_setting('track_wal_io_timing')::boolean as timed`
  const timed = setting!.timed
  const attempts = [
    () => sql<{ flushes: number; ms: number }[]>`
      select coalesce(sum(fsyncs), 0)::float8 as flushes, coalesce(sum(fsync_time), 0)::float8 as ms
      from pg_stat_io where object = 'wal'`,
    () => sql<{ flushes: number; ms: number }[]>`select wal_sync::float8 as flushes, wal_sync_time::float8 as ms from pg_stat_wal`,
  ]
  for (const attempt of attempts) {
    try {
      const [row] = await attempt()
      // pg_stat_io has no WAL rows before PostgreSQL 18: then pg_stat_wal has the counts.
      if (row && row.flushes > 0) return { flushes: row.flushes, ...(timed ? { ms: row.ms } : {}) }
    } catch {
      // the view or its columns do not exist in this version
    }
  }
  return undefined
}

export function walFlushDelta(before: WalFlushReading | undefined, after: WalFlushReading | undefined): WalFlushDelta | undefined {
  if (!before || !after) return undefined
  const flushes = after.flushes - before.flushes
  const ms = before.ms !== undefined && after.ms !== undefined ? after.ms - before.ms : undefined
  return { flushes, ...(ms !== undefined && flushes > 0 ? { meanMs: Math.round((ms / flushes) * 100) / 100 } : {}) }
}
