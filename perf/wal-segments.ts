// WAL segments to reuse, as a server that has been running has them.
//
// PostgreSQL writes WAL into 16 MB segment files and, at a checkpoint, renames
// the ones it no longer needs for reuse. A new server has none, so every 16 MB
// of its WAL is a new file, which costs either a zero-fill while every commit
// waits (wal_init_zero on, PostgreSQL's default) or a block allocation in each
// flush (off, the embedded server): docs/performance.md, "WAL segment stalls".
// A benchmark on a new server would measure its first hour, not its life.
//
// So the bench, on its own server only, first writes `megabytes` of WAL,
// keeps that much for reuse (min_wal_size, as docs/deploy.md advises) and
// checkpoints, which recycles the written segments.
import type { Sql } from '../src/db/pool.ts'

const MEGABYTE = 1024 * 1024

/** Writes and recycles `megabytes` of WAL; returns the segment files then ready in pg_wal. */
export async function recycleWal(sql: Sql, megabytes: number): Promise<number> {
  if (!Number.isInteger(megabytes) || megabytes < 32) throw new RangeError('megabytes must be an integer >= 32')
  await sql.unsafe(`alter system set min_wal_size = '${megabytes}MB'`)
  await sql`select pg_reload_conf()`
  // One non-transactional message per megabyte: WAL is written, no table grows.
  for (let written = 0; written < megabytes; written++) {
    await sql`select pg_logical_emit_message(false, 'bench-wal', repeat('x', ${MEGABYTE - 1024}))`
  }
  await sql`checkpoint`
  const [row] = await sql<{ segments: number }[]>`
    select count(*)::int as segments from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$'`
  return row!.segments
}
