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
  /** Milliseconds spent flushing. */
  ms: number
}

export interface WalFlushDelta {
  flushes: number
  /** Mean flush time; absent when the server does not time flushes. */
  meanMs?: number
}

export interface WalFlushReader {
  /** Whether the server times flushes (track_wal_io_timing). */
  timed: boolean
  read(): Promise<WalFlushReading>
  delta(before: WalFlushReading, after: WalFlushReading): WalFlushDelta
}

/** Turns flush timing on for the whole server (superuser; it outlives the session). */
export async function enableWalTiming(sql: Sql): Promise<void> {
  await sql`alter system set track_wal_io_timing = on`
  await sql`select pg_reload_conf()`
  // The reload reaches each session a moment later, this one included.
  for (let attempt = 0; attempt < 50; attempt++) {
    const [setting] = await sql<{ on: boolean }[]>`select current_setting('track_wal_io_timing')::boolean as on`
    if (setting!.on) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** A reader for this server's version, or undefined before PostgreSQL 14 (no WAL statistics). */
export async function walFlushReader(sql: Sql): Promise<WalFlushReader | undefined> {
  const [server] = await sql<{ version: number; timed: boolean }[]>`
    select current_setting('server_version_num')::int as version, current_setting('track_wal_io_timing')::boolean as timed`
  const { version, timed } = server!
  if (version < 140000) return undefined
  const query =
    version >= 180000
      ? () => sql<WalFlushReading[]>`
          select coalesce(sum(fsyncs), 0)::float8 as flushes, coalesce(sum(fsync_time), 0)::float8 as ms
          from pg_stat_io where object = 'wal'`
      : () => sql<WalFlushReading[]>`select wal_sync::float8 as flushes, wal_sync_time::float8 as ms from pg_stat_wal`
  return {
    timed,
    read: async () => (await query())[0]!,
    delta(before, after) {
      const flushes = after.flushes - before.flushes
      const meanMs = timed && flushes > 0 ? Math.round(((after.ms - before.ms) / flushes) * 100) / 100 : undefined
      return { flushes, ...(meanMs !== undefined ? { meanMs } : {}) }
    },
  }
}
