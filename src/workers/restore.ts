// Loads a retention snapshot back into a table: the event table it came from
// by default (recreating the day's partition if retention dropped it), or
// another table with the same columns. The file is verified against its
// manifest first; rows already present are left alone (idempotent), and rows
// of learners erased since the snapshot was taken are not brought back.
import type { Sql } from '../db/pool.ts'
import { copySnapshotInto, quoteIdent, readManifest, SnapshotError, verifyFile, type SnapshotManifest } from './snapshot.ts'

export interface RestoreSummary {
  table: string
  day: string
  rows: number
  inserted: number
  /** Rows of erased learners, not restored. */
  erased: number
  /** Rows already present. */
  present: number
}

const EVENT_TABLES = new Set(['progress_events', 'analytics_events'])

export async function restoreSnapshot(sql: Sql, file: string, options: { into?: string } = {}): Promise<RestoreSummary> {
  const { manifest, dataPath } = readManifest(file)
  await verifyFile(dataPath, manifest.sha256, manifest.rows)
  const target = options.into ?? manifest.table
  return sql.begin(async (tx) => {
    const [exists] = await tx<{ ok: boolean }[]>`select to_regclass(${quoteIdent(target)}) is not null as ok`
    if (!exists?.ok) throw new SnapshotError(`table ${target} does not exist`)
    if (EVENT_TABLES.has(target)) await tx`select ensure_day_partition(${target}, ${manifest.day}::date)`

    // The snapshot's columns and types, whatever the target's column order.
    await tx.unsafe(`create temp table restore_rows on commit drop as
                     select ${manifest.columns.map(quoteIdent).join(', ')} from ${quoteIdent(manifest.table)} limit 0`)
    await copySnapshotInto(tx, dataPath, manifest, 'restore_rows')
    const [loaded] = await tx<{ n: number }[]>`select count(*)::int as n from restore_rows`
    if (loaded!.n !== manifest.rows) throw new SnapshotError(`loaded ${loaded!.n} rows, the manifest says ${manifest.rows}`)

    const erased = await tx.unsafe(`delete from restore_rows r where ${erasedLearner(manifest)}`)
    const columns = manifest.columns.map(quoteIdent).join(', ')
    const inserted = await tx.unsafe(`insert into ${quoteIdent(target)} (${columns})
                                      select ${columns} from restore_rows on conflict do nothing`)
    return {
      table: target,
      day: manifest.day,
      rows: manifest.rows,
      inserted: inserted.count,
      erased: erased.count,
      present: manifest.rows - erased.count - inserted.count,
    }
  })
}

/** SQL condition: the row `r` belongs to a learner with an erasure receipt. */
function erasedLearner(manifest: SnapshotManifest): string {
  if (manifest.columns.includes('org_id')) {
    return 'exists (select 1 from erasure_receipts e where e.org_id = r.org_id and e.user_id = r.user_id)'
  }
  // Dead letters name an org only as a hint; erase_learner removed them on the same terms.
  return 'exists (select 1 from erasure_receipts e where e.user_id = r.user_id and (r.org_hint is null or e.org_id = r.org_hint))'
}
