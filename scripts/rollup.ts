// npm run rollup: brings every org's hourly and daily rollups up to date now
// (what workers do every 5 minutes). Safe beside running workers: runs never overlap.
import { rollupJob, type RollupSummary } from '../src/workers/rollup.ts'
import { parseCliArgs } from './cli-args.ts'
import { runJobScript } from './job-script.ts'

parseCliArgs('usage: npm run rollup', { options: {} })

await runJobScript<RollupSummary>(rollupJob, (result) =>
  result.skipped
    ? `rollup: skipped (${result.skipped})`
    : `rollup: ${result.orgsDone}/${result.orgs} orgs, ${result.events} events in ${result.chunks} chunks${result.complete ? '' : ' (stopped early; the next run continues)'}`)
