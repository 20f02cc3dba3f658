// Forward-only migrations from numbered files in sql/ (000001_name.sql), each
// applied in its own transaction and recorded with a SHA-256 checksum. Runners
// serialise on a transaction-scoped advisory lock and re-check what is applied
// once they hold it, so any number may run at once.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Sql } from './pool.ts'

export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url))
const MIGRATION_LOCK = 19524

export interface Migration {
  id: number
  name: string
  checksum: string
  body: string
}

export class MigrationError extends Error {
  override name = 'MigrationError'
}

export function readMigrations(dir = SQL_DIR): Migration[] {
  return fs
    .readdirSync(dir)
    .filter((file) => /^\d{6}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const body = fs.readFileSync(path.join(dir, file), 'utf8')
      return { id: Number(file.slice(0, 6)), name: file, body, checksum: createHash('sha256').update(body).digest('hex') }
    })
}

export interface MigrateOptions {
  retentionDays: number
  aheadDays: number
  dir?: string
  /** false: leave the event partitions to the caller (the partitions job). */
  partitions?: boolean
  log?: (line: string) => void
}

/** Applies pending migrations, then makes sure the event partitions exist. */
export async function migrate(sql: Sql, options: MigrateOptions): Promise<string[]> {
  const log = options.log ?? (() => {})
  const migrations = readMigrations(options.dir)
  const applied: string[] = []
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`
    await tx`create table if not exists schema_migrations (
      id integer primary key, name text not null, checksum text not null,
      applied_at timestamptz not null default now())`
  })
  for (const migration of migrations) {
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`
      const [row] = await tx<{ name: string; checksum: string }[]>`
        select name, checksum from schema_migrations where id = ${migration.id}`
      if (row) {
        if (row.checksum !== migration.checksum) {
          throw new MigrationError(
            `sql/${migration.name} was changed after it was applied (as ${row.name}); ` +
              'migrations are forward-only: restore the file and add a new one',
          )
        }
        return
      }
      await tx.unsafe(migration.body)
      await tx`insert into schema_migrations (id, name, checksum) values (${migration.id}, ${migration.name}, ${migration.checksum})`
      applied.push(migration.name)
      log(`migrated: ${migration.name}`)
    })
  }
  if (options.partitions !== false) await ensurePartitions(sql, options.retentionDays, options.aheadDays)
  return applied
}

/** This code's migrations that the database has not recorded (all of them on a new database). */
export async function pendingMigrations(sql: Sql, dir?: string): Promise<string[]> {
  const [table] = await sql<{ exists: boolean }[]>`select to_regclass('schema_migrations') is not null as exists`
  const rows = table?.exists ? await sql<{ id: number }[]>`select id from schema_migrations` : []
  const applied = new Set(rows.map((row) => row.id))
  return readMigrations(dir)
    .filter((migration) => !applied.has(migration.id))
    .map((migration) => migration.name)
}

export async function ensurePartitions(sql: Sql, retentionDays: number, aheadDays: number): Promise<string[]> {
  const rows = await sql<{ partition_name: string }[]>`select partition_name from ensure_partitions(${retentionDays}, ${aheadDays})`
  return rows.map((row) => row.partition_name)
}
