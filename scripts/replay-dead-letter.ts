// npm run replay:dead-letter: ingests deferred events whose assignment now
// exists, in chunks until none is left (what workers do every 5 minutes).
import { replayJob, type ReplaySummary } from '../src/workers/replay.ts'
import { parseCliArgs } from './cli-args.ts'
import { runJobScript } from './job-script.ts'

parseCliArgs('usage: npm run replay:dead-letter', { options: {} })

await runJobScript<ReplaySummary>(replayJob, (result) =>
  `replay: ${result.replayed} replayed (${result.accepted} accepted, ${result.duplicates} duplicates); ${result.tooOld} discarded as too_old; ${result.waiting} still waiting for an assignment${result.complete ? '' : '; stopped early'}`)
