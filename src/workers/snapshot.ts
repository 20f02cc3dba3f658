// Retention snapshots: a table's rows (or one day of them) as gzip'd
// PostgreSQL COPY text, beside a manifest with the table, day, row count and
// SHA-256 of the file. A snapshot only counts once it is verified: the file is
// read back from disk, its hash recomputed and its rows counted against the
// count the database gave in the same transaction as the COPY. Files are
// written under a temporary name and renamed, so a crash leaves no file that
// looks complete but is not.
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { Transform, Writable, type Readable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { createGunzip, createGzip } from 'node:zlib'
import type postgres from 'postgres'

export const SNAPSHOT_FORMAT = 'postgresql-copy-text+gzip'

export interface SnapshotManifest {
  format: typeof SNAPSHOT_FORMAT
  /** The table the rows belong to (the parent of a partition). */
  table: string
  /** The relation copied: a partition's own name, or the table. */
  source: string
  /** UTC day of the rows' occurred_at, YYYY-MM-DD. */
  day: string
  rows: number
  /** SHA-256 of the .copy.gz file, hex. */
  sha256: string
  /** Data file name, relative to the manifest. */
  file: string
  /** COPY column order. */
  columns: string[]
  createdAt: string
}

export class SnapshotError extends Error {}

type Queryable = Pick<postgres.Sql, 'unsafe'> | Pick<postgres.TransactionSql, 'unsafe'>

export interface WriteSnapshotOptions {
  dir: string
  table: string
  source: string
  day: string
  columns: string[]
  /** The SELECT whose rows are copied (trusted SQL: identifiers already quoted). */
  select: string
  /** Rows the database counted in the same snapshot as the COPY. */
  expectedRows: number
}

/** Writes, verifies and publishes a snapshot; returns its manifest and path. */
export async function writeSnapshot(db: Queryable, options: WriteSnapshotOptions): Promise<{ manifest: SnapshotManifest; path: string }> {
  const dir = path.join(options.dir, options.table)
  fs.mkdirSync(dir, { recursive: true })
  const base = freeBaseName(dir, `${options.table}_${options.day.replaceAll('-', '')}`)
  const dataFile = `${base}.copy.gz`
  const temp = path.join(dir, `.${dataFile}.${process.pid}.tmp`)
  try {
    const columns = options.columns.map(quoteIdent).join(', ')
    const copy = (await db.unsafe(`copy (select ${columns} from (${options.select}) rows) to stdout`).readable()) as Readable
    resumeConnectionWhenDone(copy)
    const lines = new LineCounter()
    const hash = createHash('sha256')
    await readToEnd(copy, pipeline(lines, createGzip(), tee(hash), fs.createWriteStream(temp)), lines)
    await fsyncFile(temp)
    const sha256 = hash.digest('hex')
    if (lines.count !== options.expectedRows) {
      throw new SnapshotError(`${options.source}: COPY gave ${lines.count} rows, the table holds ${options.expectedRows}`)
    }
    await verifyFile(temp, sha256, options.expectedRows)

    const manifest: SnapshotManifest = {
      format: SNAPSHOT_FORMAT,
      table: options.table,
      source: options.source,
      day: options.day,
      rows: options.expectedRows,
      sha256,
      file: dataFile,
      columns: options.columns,
      createdAt: new Date().toISOString(),
    }
    fs.renameSync(temp, path.join(dir, dataFile))
    const manifestPath = path.join(dir, `${base}.manifest.json`)
    writeFileDurably(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`)
    fsyncDirectory(dir)
    return { manifest, path: manifestPath }
  } finally {
    fs.rmSync(temp, { force: true })
  }
}

/**
 * postgres.js (3.4) pauses its connection's socket when a COPY's stream is
 * full and resumes it from the stream's _read. When the COPY's last data
 * arrives while paused (more than the stream's buffer at once, with the end
 * in the same read), the stream ends without another read, the socket stays
 * paused, and the transaction's next statement, its COMMIT, waits forever:
 * retention hung with its lock held (porsager/postgres#499). Once the stream
 * is done, do what that read would have done.
 */
function resumeConnectionWhenDone(copy: Readable): void {
  copy.once('close', () => (copy as Readable & { _read(size: number): void })._read(0))
}

/**
 * Pipes the COPY into `into` (whose pipeline is `written`) and waits for both.
 * Should the file fail (a full or read-only SNAPSHOT_DIR), the COPY is still
 * read to its end and discarded before the error is thrown: postgres.js cannot
 * abandon one part-way (a destroyed stream pauses its connection for good), so
 * a pipeline that destroyed it left retention hung inside its transaction.
 */
async function readToEnd(copy: Readable, written: Promise<void>, into: Writable): Promise<void> {
  copy.on('error', (error) => into.destroy(error))
  copy.pipe(into)
  try {
    await written
  } catch (error) {
    copy.unpipe(into)
    copy.resume()
    await finished(copy).catch(() => {})
    throw error
  }
}

/**
 * Removes the temporary files of snapshots that never finished (a process
 * killed mid-write: its finally never ran). Only while no snapshot is being
 * written: retention calls it under its lock, the only writer of snapshots.
 */
export function removeUnfinishedSnapshots(dir: string): string[] {
  const removed: string[] = []
  for (const table of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!table.isDirectory()) continue
    for (const file of fs.readdirSync(path.join(dir, table.name))) {
      if (!/\.\d+\.tmp$/.test(file)) continue
      fs.rmSync(path.join(dir, table.name, file), { force: true })
      removed.push(path.join(table.name, file))
    }
  }
  return removed
}

/** Recomputes a snapshot file's hash and row count from disk; throws unless both match. */
export async function verifyFile(file: string, sha256: string, rows: number): Promise<void> {
  // The hash first, on its own: a damaged file must be reported as damaged,
  // not as whatever the decompressor makes of it.
  const hash = createHash('sha256')
  await pipeline(fs.createReadStream(file), tee(hash), discard())
  const actual = hash.digest('hex')
  if (actual !== sha256) throw new SnapshotError(`${path.basename(file)}: SHA-256 ${actual} does not match ${sha256}`)
  const lines = new LineCounter()
  await pipeline(fs.createReadStream(file), createGunzip(), lines, discard())
  if (lines.count !== rows) throw new SnapshotError(`${path.basename(file)}: holds ${lines.count} rows, expected ${rows}`)
}

/** A snapshot's manifest, from the path of the manifest or of its data file. */
export function readManifest(file: string): { manifest: SnapshotManifest; dataPath: string } {
  const manifestPath = file.endsWith('.copy.gz') ? file.replace(/\.copy\.gz$/, '.manifest.json') : file
  let manifest: SnapshotManifest
  try {
    manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as SnapshotManifest
  } catch (error) {
    throw new SnapshotError(`cannot read manifest ${manifestPath}: ${(error as Error).message}`)
  }
  if (manifest.format !== SNAPSHOT_FORMAT || !Array.isArray(manifest.columns) || !Number.isInteger(manifest.rows)) {
    throw new SnapshotError(`${manifestPath} is not a snapshot manifest`)
  }
  return { manifest, dataPath: path.join(path.dirname(manifestPath), manifest.file) }
}

/** Streams a verified snapshot's rows into `COPY target FROM STDIN` (target: a quoted relation). */
export async function copySnapshotInto(db: Queryable, dataPath: string, manifest: SnapshotManifest, target: string): Promise<void> {
  const columns = manifest.columns.map(quoteIdent).join(', ')
  const sink = await db.unsafe(`copy ${target} (${columns}) from stdin`).writable()
  await pipeline(fs.createReadStream(dataPath), createGunzip(), sink)
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** `name`, or `name_2`, `name_3`... when a snapshot of that table and day already exists. */
function freeBaseName(dir: string, name: string): string {
  for (let n = 1; ; n++) {
    const base = n === 1 ? name : `${name}_${n}`
    if (!fs.existsSync(path.join(dir, `${base}.manifest.json`)) && !fs.existsSync(path.join(dir, `${base}.copy.gz`))) return base
  }
}

/** COPY text format ends every row with a newline and escapes newlines in values. */
class LineCounter extends Transform {
  count = 0
  override _transform(chunk: Buffer, _encoding: string, done: (error?: Error | null, data?: Buffer) => void) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.count++
    done(null, chunk)
  }
}

function tee(hash: ReturnType<typeof createHash>): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk)
      done(null, chunk)
    },
  })
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() })
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.promises.open(file, 'r+')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

function writeFileDurably(file: string, content: string): void {
  const temp = `${file}.${process.pid}.tmp`
  const fd = fs.openSync(temp, 'w')
  try {
    fs.writeSync(fd, content)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  fs.renameSync(temp, file)
}

function fsyncDirectory(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r')
    try {
      fs.fsyncSync(fd)
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    // Not every platform can fsync a directory; the files themselves are synced.
  }
}
