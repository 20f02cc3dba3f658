// npm run restore:snapshot -- FILE [--into TABLE]: loads a retention snapshot
// (its .manifest.json or .copy.gz) back into the table it came from, or into
// TABLE. Verifies the file's SHA-256 and row count first; idempotent; skips
// rows of learners erased since.
import path from 'node:path'
import { restoreSnapshot } from '../src/workers/restore.ts'
import { exitWithUsage, parseCliArgs } from './cli-args.ts'
import { openSession } from './job-script.ts'
import { progressBar } from './progress.ts'

const USAGE = 'usage: npm run restore:snapshot -- FILE [--into TABLE]   (FILE: a snapshot .manifest.json or .copy.gz)'
const { values, positionals } = parseCliArgs(USAGE, { options: { into: { type: 'string' } }, allowPositionals: true })
const file = positionals[0]
if (!file || positionals.length > 1) exitWithUsage(USAGE)
const session = await openSession('restore-snapshot')
const bar = progressBar('restore')
try {
  bar.update(0, 1)
  const result = await restoreSnapshot(session.sql, path.resolve(file), values.into ? { into: values.into } : {})
  bar.update(1, 1)
  bar.stop()
  console.log(`restore: ${result.inserted} of ${result.rows} rows of ${result.day} loaded into ${result.table} (${result.present} already present, ${result.erased} of erased learners skipped)`)
} catch (error) {
  bar.stop()
  console.error(`restore failed: ${(error as Error).message}`)
  process.exitCode = 1
} finally {
  await session.close()
}
