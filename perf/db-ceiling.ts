// The database ceiling: the k6 scenario's batches, validated as the API does,
// sent straight to upsert_progress_batch over a postgres.js pool, one call per
// batch (the statement directWriter sends), by N callers back to back. No
// HTTP, no request parsing, no auth: what the database sustains per batch.
// Prints one JSON line.
//   node perf/db-ceiling.ts --url postgres://... [--callers 4] [--seconds 10] [--warmup 3]
//     [--learners 5000] [--courses 4] [--events 10]
import { createPool } from '../src/db/pool.ts'
import type { ProgressRow } from '../src/ingest/validate.ts'
import { closedLoop, driverArgs } from './closed-loop.ts'
import { slot } from './lib/activity.js'
import { preparedProgressBatch } from './prepared-batch.ts'

const args = driverArgs(process.argv.slice(2))
const sql = createPool(args.url, { max: args.callers, applicationName: 'bench-db-ceiling' })

function batch(iteration: number): ProgressRow[] {
  const { learner, round } = slot(iteration, args.learners)
  return preparedProgressBatch(learner, round, args.eventsPerBatch, args.courses).rows
}

// Batches are made before the clock starts, so that the driver's own work
// (generating, validating, serialising) does not cap the ceiling; past the
// prepared ones (a faster database than expected), they are made on the fly.
const PREPARED_PER_SECOND = 1500
const prepared: { payload: string; rows: number }[] = []
for (let k = 0; k < Math.min(60000, (args.warmupSeconds + args.seconds) * PREPARED_PER_SECOND); k++) {
  const rows = batch(k)
  prepared.push({ payload: JSON.stringify(rows), rows: rows.length })
}

try {
  const result = await closedLoop({
    ...args,
    async send(iteration) {
      let next = prepared[iteration]
      if (next) prepared[iteration] = undefined as never // let it be collected
      else {
        const rows = batch(iteration)
        next = { payload: JSON.stringify(rows), rows: rows.length }
      }
      // exactly what directWriter sends
      const [result] = await sql<{ outcomes: string }[]>`select upsert_progress_batch(${next.payload}::text::json) as outcomes`
      if (result!.outcomes.length !== next.rows) throw new Error(`expected ${next.rows} outcomes, got ${result!.outcomes.length}`)
      return next.rows
    },
  })
  console.log(JSON.stringify({ driver: 'db-ceiling', ...result }))
} finally {
  await sql.end({ timeout: 5 })
}
