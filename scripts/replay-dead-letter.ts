// npm run replay:dead-letter: ingests deferred events whose assignment now
// exists, in chunks until none is left (what workers do every 5 minutes).
import { replayJob, type ReplaySummary } from '../src/workers/replay.ts'
import { runJobScript } from './job-script.ts'

await runJobScript<ReplaySummary>(replayJob, (result) =>
  `replay: ${result.replayed} replayed (${result.accepted} accepted, ${result.duplicates} duplicates); ${result.waiting} still waiting for an assignment${result.complete ? '' : '; stopped early'}`)
